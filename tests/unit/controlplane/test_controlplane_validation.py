"""The control plane never puts a resource that fails semantic validation into a snapshot."""

from __future__ import annotations

from pathlib import Path

import pytest
from sourcekit import Inputs

from plait.api import VirtualService
from plait.errors import Severity
from plait.model.labels import Labels
from plait.model.registry import PortMap, WorkloadInstance
from plait.sources.workloads import registry_path, write_registry

SERVICES = """apiVersion: v1
kind: Service
metadata: {name: reviews}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 8080}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
"""


def vs(name: str, subset: str, uri: str = "prefix: /") -> str:
    return f"""---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: {name}}}
spec:
  hosts: [{name}.example.com]
  http:
  - match: [{{uri: {{{uri}}}}}]
    route: [{{destination: {{host: reviews, subset: {subset}}}}}]
"""


LOOKAHEAD = "regex: '^/(?!admin).*'"


def routes(watcher: Inputs) -> dict[str, str]:
    """VirtualService name → the subset of its first destination, in the new snapshot."""
    out = {}
    for item in watcher.snapshot().virtual_services:
        spec = item.resource.spec
        assert isinstance(item.resource, VirtualService)
        out[item.resource.metadata.name] = spec.http[0].route[0].destination.subset or ""
    return out


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "services.yaml").write_text(SERVICES)
    (tmp_path / "routes.yaml").write_text(vs("a", "v1") + vs("b", "v1"))
    return tmp_path


def test_an_invalid_resource_keeps_its_last_good_version_and_its_neighbours_apply(
    root: Path,
) -> None:
    watcher = Inputs(root)
    assert routes(watcher) == {"a": "v1", "b": "v1"}
    path = root / "routes.yaml"
    path.write_text(vs("a", "v2", LOOKAHEAD) + vs("b", "v2"))
    assert watcher.apply({str(path)})

    assert routes(watcher) == {"a": "v1", "b": "v2"}  # a: last good; b: the edit
    assert watcher.kept == (f"VirtualService/default/a ({path})",)
    [error] = [m for m in watcher.snapshot().messages if m.severity is Severity.ERROR]
    assert (error.file, error.document, error.path) == (
        str(path),
        0,
        "spec.http[0].match[0].uri.regex",
    )
    assert (error.kind, error.name) == ("VirtualService", "a")
    assert "invalid perl operator: (?!" in error.message

    path.write_text(vs("a", "v2") + vs("b", "v2"))  # fixed: the edit applies
    watcher.apply({str(path)})
    assert routes(watcher) == {"a": "v2", "b": "v2"}
    assert watcher.kept == ()
    assert [m for m in watcher.snapshot().messages if m.severity is Severity.ERROR] == []


def test_an_invalid_resource_that_never_was_good_is_absent(root: Path) -> None:
    watcher = Inputs(root)
    new = root / "new.yaml"
    new.write_text(vs("c", "v1", LOOKAHEAD))
    watcher.apply({str(new)})
    assert routes(watcher) == {"a": "v1", "b": "v1"}
    assert watcher.kept == ()
    assert [(m.name, m.severity) for m in watcher.snapshot().messages] == [("c", Severity.ERROR)]


def test_analysis_warnings_are_in_the_snapshot_once_per_config(root: Path) -> None:
    (root / "routes.yaml").write_text(vs("a", "v3"))
    watcher = Inputs(root)
    first = [m for m in watcher.snapshot().messages if m.severity is Severity.WARNING]
    assert [m.path for m in first] == ["spec.http[0].route[0].destination.subset"]
    # A registry change rebuilds the snapshot with the same warnings (not recomputed twice).
    instance = WorkloadInstance(
        name="reviews-0",
        workload="reviews",
        namespace="default",
        labels=Labels.of({"app": "reviews", "version": "v1"}),
        service_account="reviews",
        address="127.0.0.1",
        ports=PortMap.all_to(20001),
    )
    write_registry(root, [instance])
    assert watcher.apply({str(registry_path(root))})
    again = [m for m in watcher.snapshot().messages if m.severity is Severity.WARNING]
    assert again == first
