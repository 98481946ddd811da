"""What `plait analyze` passes, Envoy accepts: every resource of the Istio corpus
(tests/unit/api/data/istio_corpus.yaml) that plait accepts is translated for two sidecars
and a gateway, and the result goes through `envoy --mode validate` (issue 15: a config
`analyze` passes must never be NACKed).

Resources naming certificate files (`serverCertificate`, `caCertificates`, ...) are left
out: Envoy reads those files when it loads the config, and the corpus's paths exist on no
machine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from test_translate_envoy_validate import assert_envoy_accepts
from translate_kit import REVIEWS_SERVICE, gateway, sidecar

from plait.analysis import vet
from plait.api import load_text
from plait.errors import Severity
from plait.model.proxy import Proxy
from plait.model.snapshot import MeshSnapshot, build_snapshot
from plait.translate.proxy import Translator

CORPUS = Path(__file__).parents[1] / "api" / "data" / "istio_corpus.yaml"
FILE_FIELDS = ("serverCertificate", "privateKey", "caCertificates", "clientCertificate", "caCrl")


def _accepted() -> list[str]:
    """YAML of each corpus resource plait accepts, each under a name of its own."""
    out = []
    for i, case in enumerate(yaml.safe_load(CORPUS.read_text())):
        doc: Any = case.get("doc")
        if doc is None or any(f in yaml.safe_dump(doc) for f in FILE_FIELDS):
            continue
        doc = {**doc, "metadata": {**doc.get("metadata", {}), "name": f"case{i}"}}
        text = yaml.safe_dump(doc, sort_keys=False)
        result = vet(load_text(text, "case.yaml"))
        if not any(m.severity is Severity.ERROR for m in result.messages):
            out.append(text)
    return out


ACCEPTED = _accepted()


def _snapshot() -> MeshSnapshot:
    result = vet(load_text(REVIEWS_SERVICE + "---\n".join(ACCEPTED), "corpus.yaml"))
    return build_snapshot(result.resources, (), 1, result.messages)


def test_most_of_the_corpus_is_translated() -> None:
    assert len(ACCEPTED) > 200


@pytest.mark.parametrize(
    "proxy",
    [
        sidecar("frontend-0"),
        sidecar("frontend-0", namespace="foo"),
        gateway((80, 8080), (443, 8443), (7, 8007), (8080, 8081)),
    ],
    ids=["sidecar-default", "sidecar-foo", "gateway"],
)
def test_envoy_accepts_everything_plait_accepts(tmp_path: Path, proxy: Proxy) -> None:
    assert_envoy_accepts(tmp_path, Translator(_snapshot()).config_for(proxy))
