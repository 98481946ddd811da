"""plait's verdicts agree with Istio's on its own validation cases (issue 15).

data/istio_corpus.yaml holds several hundred resources from Istio's validation tests and
test data with Istio's verdict (see its header). Each is run through `plait analyze`'s
steps; plait "accepts" a resource when no error is reported. Agreement must stay at or
above 98%, and the cases where plait disagrees must be exactly those marked `differs`
(each with its reason, also in docs/compatibility.md): a new disagreement or a fixed one
both fail the test, so the list stays true.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from istio_kit import errors

CORPUS = Path(__file__).parent / "data" / "istio_corpus.yaml"
MIN_AGREEMENT = 0.98


def _cases() -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = yaml.safe_load(CORPUS.read_text())
    return cases


def _text(case: dict[str, Any]) -> str:
    return case.get("text") or yaml.safe_dump(case["doc"], sort_keys=False)


def _plait_accepts(case: dict[str, Any]) -> bool:
    return not errors(_text(case))


CASES = _cases()


def test_the_corpus_is_large_and_covers_every_kind_plait_models() -> None:
    assert len(CASES) >= 300
    kinds = {yaml.safe_load(_text(c))["kind"] for c in CASES}
    assert kinds == {
        "VirtualService",
        "DestinationRule",
        "Gateway",
        "ServiceEntry",
        "AuthorizationPolicy",
        "PeerAuthentication",
        "RequestAuthentication",
    }
    assert {c["istio"] for c in CASES} == {"valid", "invalid"}
    assert len({c["case"] for c in CASES}) == len(CASES)


def test_plait_agrees_with_istio() -> None:
    disagree = {c["case"] for c in CASES if _plait_accepts(c) != (c["istio"] == "valid")}
    agreement = 1 - len(disagree) / len(CASES)
    print(f"agreement with Istio: {agreement:.1%} of {len(CASES)} cases")
    assert agreement >= MIN_AGREEMENT
    listed = {c["case"] for c in CASES if "differs" in c}
    assert disagree - listed == set(), "new disagreements with Istio"
    assert listed - disagree == set(), "listed as differing but plait now agrees: unlist"


@pytest.mark.parametrize("case", [c for c in CASES if "differs" in c], ids=lambda c: str(c["case"]))
def test_each_difference_has_a_reason_in_the_docs(case: dict[str, Any]) -> None:
    docs = (Path(__file__).parents[3] / "docs" / "compatibility.md").read_text()
    assert case["case"] in docs
