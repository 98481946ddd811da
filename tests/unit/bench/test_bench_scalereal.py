"""The scale bench's checks of a real Envoy's config (`bench.scalereal`): they hold on
the config plait translates for the change, and fail on the config before it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from google.protobuf import any_pb2, json_format

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # bench/ is a top-level package

from bench import scoped  # noqa: E402
from bench.meshgen import SnapshotBuilder, SyntheticMesh, fake_ports, instance_of, sidecar  # noqa: E402
from bench.scalereal import clusters, endpoint, header, proxies, service_of, vs_weight  # noqa: E402
from envoy.config.endpoint.v3 import endpoint_pb2  # noqa: E402
from envoy.config.route.v3 import route_pb2  # noqa: E402

from plait.controlplane.state import MeshState  # noqa: E402
from plait.model.labels import Labels  # noqa: E402
from plait.model.snapshot import MeshSnapshot  # noqa: E402
from plait.translate.typeurls import CLUSTER, ENDPOINT, ROUTE  # noqa: E402

SERVICES = 20


def _dump(snapshot: MeshSnapshot, type_url: str, key: str, message: type[Any]) -> dict[str, Any]:
    """What Envoy's /config_dump shows of one type for proxy 0 (snake_case JSON)."""
    config = MeshState(snapshot).config_for(
        SyntheticMesh.make(SERVICES, 2, fake_ports()).proxies[0]
    )
    out = []
    for r in config.by_type[type_url].values():
        msg = message()
        any_pb2.Any.FromString(r.body).Unpack(msg)
        out.append({key: json_format.MessageToDict(msg, preserving_proto_field_name=True)})
    return {"configs": [{"dynamic": out}]}


def _builder() -> tuple[SnapshotBuilder, SyntheticMesh]:
    mesh = SyntheticMesh.make(SERVICES, 2, fake_ports())
    return SnapshotBuilder(mesh.files, mesh.registry), mesh


def test_vs_weight_holds_after_the_edit_only() -> None:
    builder, _ = _builder()
    before = _dump(builder.snapshot(), ROUTE, "route_config", route_pb2.RouteConfiguration)
    after = _dump(
        builder.update(*SyntheticMesh.routing_file(70)),
        ROUTE,
        "route_config",
        route_pb2.RouteConfiguration,
    )
    assert vs_weight(70).holds(after) is None
    assert vs_weight(70).holds(before) == "v1 weights [90]"
    assert vs_weight(70).holds({}) is not None


def test_endpoint_present_then_absent() -> None:
    builder, mesh = _builder()
    builder.snapshot()
    svc = SyntheticMesh.name(1)
    extra = sidecar(
        f"{svc}-x", svc, Labels.of({"app": svc, "version": "v1"}), (60000, 60001, 60002)
    )
    added = builder.set_registry([*mesh.registry, instance_of(extra)])
    key, cla = "endpoint_config", endpoint_pb2.ClusterLoadAssignment
    with_it = _dump(added, ENDPOINT, key, cla)
    without = _dump(builder.set_registry(mesh.registry), ENDPOINT, key, cla)
    assert endpoint(60000, present=True).holds(with_it) is None
    assert endpoint(60000, present=True).holds(without) is not None
    assert endpoint(60000, present=False).holds(without) is None
    assert endpoint(60000, present=False).holds(with_it) is not None
    assert endpoint(60000, present=False).holds({}) == "no endpoint set"


def test_scoped_header_and_clusters() -> None:
    builder, _ = _builder()
    k = 1  # proxy 0 (svc-0000) imports svc-0001 … svc-0010
    builder.update_many(scoped.files(SERVICES))
    snapshot = builder.update(f"{scoped.SCOPED_DIR}/vs-{k:04d}.yaml", scoped.vs_yaml(k, 3))
    dump = _dump(snapshot, ROUTE, "route_config", route_pb2.RouteConfiguration)
    assert header(k, 3).holds(dump) is None
    assert header(k, 2).holds(dump) == "x-edit ['3']"
    proxy = SyntheticMesh.make(SERVICES, 2, fake_ports()).proxies[0]
    names = set(MeshState(snapshot).config_for(proxy).by_type[CLUSTER])
    listed = {"configs": [{"dynamic_active_clusters": [{"cluster": {"name": n}} for n in names]}]}
    assert clusters(names).holds(listed) is None
    assert (
        clusters(names | {"outbound|8080||svc-0019.default.svc.cluster.local"}).holds(listed)
        == "1 missing, 0 extra"
    )


def test_each_real_envoy_depends_on_one_scoped_edit() -> None:
    made = proxies(3, 1000)
    for r, p in enumerate(made):
        k = scoped.edited_service(r + 1, 1000)
        assert service_of(r, 1000) == k - 1
        assert p.workload == SyntheticMesh.name(k - 1)
    assert len({p.inbound_port for p in made}) == 3
