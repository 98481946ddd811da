"""The control plane's inputs: which changed files mean a config reload, a registry
reload, or nothing; snapshots built from them (`SnapshotBuilder`)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sourcekit import Inputs

from plait.model.labels import Labels
from plait.model.registry import PortMap, ServicePort, WorkloadInstance
from plait.sources.events import JwksUrisDiscovered
from plait.sources.workloads import registry_path, write_registry

SERVICE = """apiVersion: v1
kind: Service
metadata: {{name: {name}}}
spec:
  selector: {{app: {name}}}
  ports: [{{name: http, port: 80}}]
"""

INSTANCE = WorkloadInstance(
    name="a-0",
    workload="a",
    namespace="default",
    labels=Labels.of({"app": "a"}),
    service_account="default",
    address="127.0.0.1",
    ports=PortMap.all_to(20001),
)


def hosts(watcher: Inputs) -> list[str]:
    return sorted(watcher.snapshot().services)


@pytest.fixture(params=["plain", "under-hidden"])
def root(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """A mesh directory; also one inside a hidden directory (e.g. ~/.meshes/shop)."""
    path = tmp_path / "mesh" if request.param == "plain" else tmp_path / ".meshes" / "shop"
    path.mkdir(parents=True)
    (path / "a.yaml").write_text(SERVICE.format(name="a"))
    return path


def test_a_yaml_change_reloads_config(root: Path) -> None:
    watcher = Inputs(root)
    assert hosts(watcher) == ["a.default.svc.cluster.local"]
    for rel in ["b.yaml", "sub/c.yml"]:
        path = root / rel
        path.parent.mkdir(exist_ok=True)
        path.write_text(SERVICE.format(name=path.stem))
        assert watcher.apply({str(path)}) is True
    assert hosts(watcher) == [
        "a.default.svc.cluster.local",
        "b.default.svc.cluster.local",
        "c.default.svc.cluster.local",
    ]


def test_a_deleted_yaml_file_reloads_config(root: Path) -> None:
    watcher = Inputs(root)
    (root / "a.yaml").unlink()
    assert watcher.apply({str(root / "a.yaml")}) is True
    assert hosts(watcher) == []


def test_a_registry_change_reloads_instances_only(root: Path) -> None:
    watcher = Inputs(root)
    write_registry(root, [INSTANCE])
    (root / "b.yaml").write_text(SERVICE.format(name="b"))  # not reported: not reloaded
    assert watcher.apply({str(registry_path(root))}) is True
    snap = watcher.snapshot()
    assert sorted(snap.services) == ["a.default.svc.cluster.local"]
    assert snap.endpoints_for("a.default.svc.cluster.local", 80) == (
        INSTANCE.endpoint(ServicePort("", 80)),
    )


@pytest.mark.parametrize(
    "rel",
    [
        "README.md",
        "app/main.py",
        ".plait/state.json",
        ".plait/workloads.tmp",
        ".plait/config.yaml",
        ".git/x.yaml",
        "sub/.cache/x.yaml",
    ],
)
def test_other_files_change_nothing(root: Path, rel: str) -> None:
    watcher = Inputs(root)
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(SERVICE.format(name="z"))
    assert watcher.apply({str(path)}) is False
    assert hosts(watcher) == ["a.default.svc.cluster.local"]


def test_a_yaml_file_outside_the_root_changes_nothing(root: Path) -> None:
    watcher = Inputs(root)
    outside = root.parent / "other.yaml"
    outside.write_text(SERVICE.format(name="z"))
    assert watcher.apply({str(outside)}) is False


def test_a_relative_root_classifies_absolute_paths(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """watchfiles reports absolute paths even for a relative root."""
    monkeypatch.chdir(root.parent)
    watcher = Inputs(Path(root.name))
    (root / "b.yaml").write_text(SERVICE.format(name="b"))
    assert watcher.apply({str(root / "b.yaml")}) is True
    assert len(hosts(watcher)) == 2


def test_snapshots_are_versioned_and_carry_kept_resources(root: Path) -> None:
    watcher = Inputs(root)
    assert watcher.snapshot().version == 1
    (root / "a.yaml").write_text("kind: [\n")
    watcher.apply({str(root / "a.yaml")})
    snap = watcher.snapshot()
    assert snap.version == 2
    assert sorted(snap.services) == ["a.default.svc.cluster.local"]  # last good
    assert watcher.kept == (f"Service/default/a ({root / 'a.yaml'})",)
    assert [m.file for m in snap.messages] == [str(root / "a.yaml")]


def test_discovered_jwks_uris_are_a_snapshot_input(tmp_path: Path) -> None:
    inputs = Inputs(tmp_path)
    assert inputs.snapshot().discovered_jwks_uris == {}
    found = {"https://idp.example": "https://idp.example/keys"}
    assert inputs.store.apply(JwksUrisDiscovered("oidc", found))
    assert not inputs.store.apply(JwksUrisDiscovered("oidc", dict(found)))  # no change
    assert inputs.snapshot().discovered_jwks_uris == found
    assert inputs.store.apply(JwksUrisDiscovered("oidc", {}))
    assert inputs.snapshot().discovered_jwks_uris == {}


def test_an_instance_change_alone_takes_the_endpoint_fast_path(root: Path) -> None:
    inputs = Inputs(root)
    first = inputs.snapshot()
    write_registry(root, [INSTANCE])
    assert inputs.apply({str(registry_path(root))}) is True
    snap = inputs.snapshot()
    assert (inputs.builder.full_builds, inputs.builder.endpoint_builds) == (1, 1)
    assert snap.version == 2
    assert snap.services is first.services and snap.routing is first.routing
    assert snap.endpoints_for("a.default.svc.cluster.local", 80) == (
        INSTANCE.endpoint(ServicePort("", 80)),
    )
    assert inputs.builder.instance_names == ["a-0"]


def test_an_instance_change_with_a_config_change_is_a_full_build(root: Path) -> None:
    inputs = Inputs(root)
    inputs.snapshot()
    write_registry(root, [INSTANCE])
    (root / "b.yaml").write_text(SERVICE.format(name="b"))
    assert inputs.apply({str(registry_path(root)), str(root / "b.yaml")}) is True
    snap = inputs.snapshot()
    assert (inputs.builder.full_builds, inputs.builder.endpoint_builds) == (2, 0)
    assert sorted(snap.services) == ["a.default.svc.cluster.local", "b.default.svc.cluster.local"]
    assert len(snap.endpoints_for("a.default.svc.cluster.local", 80)) == 1


def test_an_instance_change_with_another_input_change_is_a_full_build(root: Path) -> None:
    inputs = Inputs(root)
    inputs.snapshot()
    write_registry(root, [INSTANCE])
    inputs.apply({str(registry_path(root))})
    inputs.store.apply(JwksUrisDiscovered("oidc", {"https://idp.example": "https://k"}))
    snap = inputs.snapshot()
    assert (inputs.builder.full_builds, inputs.builder.endpoint_builds) == (2, 0)
    assert snap.discovered_jwks_uris == {"https://idp.example": "https://k"}


VIRTUAL_SERVICE = """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: a}}
spec:
  hosts: [a]
  http: [{{timeout: {timeout}, route: [{{destination: {{host: a}}}}]}}]
"""


def test_a_virtual_service_edit_takes_the_config_fast_path(root: Path) -> None:
    (root / "vs.yaml").write_text(VIRTUAL_SERVICE.format(timeout="1s"))
    inputs = Inputs(root)
    first = inputs.snapshot()
    (root / "vs.yaml").write_text(VIRTUAL_SERVICE.format(timeout="2s"))
    assert inputs.apply({str(root / "vs.yaml")}) is True
    snap = inputs.snapshot()
    assert (inputs.builder.full_builds, inputs.builder.config_builds) == (1, 1)
    assert snap.version == 2
    assert snap.services is first.services and snap.endpoints is first.endpoints
    fresh = Inputs(root).snapshot()  # a full build of the same directory
    assert snap.virtual_services == fresh.virtual_services
    assert snap.routing == fresh.routing and snap.messages == fresh.messages
    (root / "b.yaml").write_text(SERVICE.format(name="b"))  # a Service: a full build
    inputs.apply({str(root / "b.yaml")})
    inputs.snapshot()
    assert (inputs.builder.full_builds, inputs.builder.config_builds) == (2, 1)
