"""The local workload registry file: round trip, atomic replace, unreadable means empty."""

from __future__ import annotations

import json
from pathlib import Path

from plait.model.labels import Labels
from plait.model.registry import PortMap, WorkloadInstance
from plait.sources.workloads import read_registry, registry_path, write_registry

INSTANCES = [
    WorkloadInstance(
        name="reviews-v1-0",
        workload="reviews-v1",
        namespace="default",
        labels=Labels.of({"app": "reviews", "version": "v1"}),
        service_account="reviews",
        address="127.0.0.1",
        ports=PortMap.all_to(20001),
    ),
    WorkloadInstance(
        name="web-0",
        workload="web",
        namespace="team",
        labels=Labels(),
        service_account="default",
        address="127.0.0.2",
        ports=PortMap.all_to(20002),
    ),
]


def test_registry_lives_in_the_state_directory(tmp_path: Path) -> None:
    assert registry_path(tmp_path) == tmp_path / ".plait" / "workloads.json"


def test_round_trip(tmp_path: Path) -> None:
    write_registry(tmp_path, INSTANCES)
    assert read_registry(tmp_path) == INSTANCES
    assert sorted(p.name for p in (tmp_path / ".plait").iterdir()) == ["workloads.json"]
    doc = json.loads(registry_path(tmp_path).read_text())
    assert doc["instances"][0] == {
        "name": "reviews-v1-0",
        "workload": "reviews-v1",
        "namespace": "default",
        "labels": {"app": "reviews", "version": "v1"},
        "serviceAccount": "reviews",
        "address": "127.0.0.1",
        "inboundPort": 20001,
        "sidecar": True,
    }


def test_write_replaces_the_previous_registry(tmp_path: Path) -> None:
    write_registry(tmp_path, INSTANCES)
    write_registry(tmp_path, INSTANCES[1:])
    assert read_registry(tmp_path) == INSTANCES[1:]
    write_registry(tmp_path, [])
    assert read_registry(tmp_path) == []


def test_optional_fields_take_defaults(tmp_path: Path) -> None:
    registry_path(tmp_path).parent.mkdir()
    registry_path(tmp_path).write_text(
        json.dumps(
            {"instances": [{"name": "a-0", "workload": "a", "namespace": "ns", "inboundPort": "7"}]}
        )
    )
    (got,) = read_registry(tmp_path)
    assert got == WorkloadInstance(
        "a-0", "a", "ns", Labels(), "default", "127.0.0.1", PortMap.all_to(7)
    )


def test_absent_or_unreadable_registry_means_no_instances(tmp_path: Path) -> None:
    assert read_registry(tmp_path) == []
    path = registry_path(tmp_path)
    path.parent.mkdir()
    for text in [
        "",
        "{not json",
        "[]",
        '{"instances": 3}',
        '{"instances": [3]}',
        '{"instances": [{"name": "x"}]}',
        '{"instances": [{"name": "a-0", "workload": "a", "namespace": "ns", '
        '"inboundPort": 7, "labels": ["app"]}]}',
    ]:
        path.write_text(text)
        assert read_registry(tmp_path) == [], text


def test_cluster_ips_round_trip_and_are_absent_by_default(tmp_path: Path) -> None:
    from plait.sources.workloads import load_cluster_ips

    write_registry(tmp_path, INSTANCES)
    assert load_cluster_ips(tmp_path) == ()
    ips = {"reviews.default.svc.cluster.local": "10.140.1.2", "a.b.svc.cluster.local": "10.140.1.1"}
    write_registry(tmp_path, INSTANCES, ips)
    assert read_registry(tmp_path) == INSTANCES
    assert load_cluster_ips(tmp_path) == tuple(sorted(ips.items()))


def test_cluster_ips_that_are_not_a_map_are_a_registry_error(tmp_path: Path) -> None:
    import pytest

    from plait.errors import RegistryError
    from plait.sources.workloads import load_cluster_ips

    write_registry(tmp_path, INSTANCES)
    registry_path(tmp_path).write_text(json.dumps({"instances": [], "clusterIPs": ["x"]}))
    with pytest.raises(RegistryError, match="clusterIPs is not a map"):
        load_cluster_ips(tmp_path)
