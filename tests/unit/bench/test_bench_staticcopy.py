"""`bench.staticcopy`: a config dump of plait's sidecar (built here as Envoy's admin API
shows it: plait's bootstrap, the translated resources as dynamic ones, endpoints and
secrets as Envoy 1.40 dumps them) becomes a static bootstrap that Envoy accepts and that
names no config source."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import any_pb2, json_format

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # bench/ is a top-level package

from bench import meshid, staticcopy  # noqa: E402
from bench.meshgen import instance_of, load, service_yaml, sidecar  # noqa: E402
from envoy.config.cluster.v3 import cluster_pb2  # noqa: E402
from envoy.config.endpoint.v3 import endpoint_pb2  # noqa: E402
from envoy.config.listener.v3 import listener_pb2  # noqa: E402
from envoy.config.route.v3 import route_pb2  # noqa: E402

from plait.agent.bootstrap import BootstrapOptions, bootstrap  # noqa: E402
from plait.agent.envoy import find_envoy  # noqa: E402
from plait.ca import CertificateAuthority  # noqa: E402
from plait.controlplane.state import MeshState  # noqa: E402
from plait.model.identity import SpiffeId, control_plane_identity  # noqa: E402
from plait.model.labels import Labels  # noqa: E402
from plait.model.proxy import Proxy  # noqa: E402
from plait.model.snapshot import build_snapshot  # noqa: E402
from plait.translate.typeurls import CLUSTER, ENDPOINT, LISTENER, ROUTE  # noqa: E402

Json = dict[str, Any]
ADMIN = "type.googleapis.com/envoy.admin.v3."
SERVER, CLIENT = "bench-server", "bench-client"
PORTS = {SERVER: (21001, 21002, 21003), CLIENT: (22001, 22002, 22003)}  # inbound, app, outbound


def _proxies() -> dict[str, Proxy]:
    out = {}
    for name, ports in PORTS.items():
        labels = Labels.of({"app": name, "version": "v1"})
        proxy = sidecar(f"{name}-0", name, labels, ports)
        out[name] = Proxy(**{**proxy.__dict__, "access_log": f"/plait/run/{name}-0.access.log"})
    return out


def _resources(config: Any, type_url: str, message: type[Any]) -> list[Json]:
    out = []
    for r in config.by_type[type_url].values():
        msg = message()
        any_pb2.Any.FromString(r.body).Unpack(msg)
        body = json_format.MessageToDict(msg, preserving_proto_field_name=True)
        out.append({"@type": f"type.googleapis.com/{msg.DESCRIPTOR.full_name}", **body})
    return out


def _as_envoy_dumps(cla: Json) -> Json:
    """A ClusterLoadAssignment as Envoy 1.40's `/config_dump?include_eds` shows it: the
    host set's state (health, weights, the locality weight 0 when unset)."""
    out = copy.deepcopy(cla)
    for locality in out.get("endpoints", []):
        locality["load_balancing_weight"] = 0
        locality.setdefault("locality", {})
        for lb in locality.get("lb_endpoints", []):
            lb.setdefault("health_status", "HEALTHY")
            lb.setdefault("load_balancing_weight", 1)
            lb["endpoint"].setdefault("health_check_config", {})
    out.setdefault("policy", {"overprovisioning_factor": 140})
    return out


def config_dump(workload: str) -> Json:
    """plait's sidecar for `workload` (bench-server and bench-client, mTLS between them)
    as its Envoy's admin API dumps it once synced."""
    proxies = _proxies()
    resources = load({"bench.yaml": "---\n".join(service_yaml(n) for n in PORTS)})
    snapshot = build_snapshot(resources, [instance_of(p) for p in proxies.values()], 1)
    proxy = proxies[workload]
    config = MeshState(snapshot).config_for(proxy)
    boot = bootstrap(
        BootstrapOptions(
            proxy=proxy,
            admin_port=0,
            xds_host="127.0.0.1",
            xds_port=15012,
            sds_socket=f"/plait/run/{workload}.sock",
            xds_identity=control_plane_identity("cluster.local"),
        )
    )
    clusters = _resources(config, CLUSTER, cluster_pb2.Cluster)
    return {
        "configs": [
            {"@type": ADMIN + "BootstrapConfigDump", "bootstrap": boot},
            {
                "@type": ADMIN + "ClustersConfigDump",
                "static_clusters": [{"cluster": c} for c in boot["static_resources"]["clusters"]],
                "dynamic_active_clusters": [{"version_info": "1", "cluster": c} for c in clusters],
            },
            {
                "@type": ADMIN + "EndpointsConfigDump",
                "dynamic_endpoint_configs": [
                    {"endpoint_config": _as_envoy_dumps(e)}
                    for e in _resources(config, ENDPOINT, endpoint_pb2.ClusterLoadAssignment)
                ],
            },
            {
                "@type": ADMIN + "ListenersConfigDump",
                "dynamic_listeners": [
                    {"name": listener["name"], "active_state": {"listener": listener}}
                    for listener in _resources(config, LISTENER, listener_pb2.Listener)
                ],
            },
            {"@type": ADMIN + "ScopedRoutesConfigDump"},
            {
                "@type": ADMIN + "RoutesConfigDump",
                "dynamic_route_configs": [
                    {"route_config": r}
                    for r in _resources(config, ROUTE, route_pb2.RouteConfiguration)
                ],
            },
            {"@type": ADMIN + "SecretsConfigDump"},
        ]
    }


def _walk(node: Any) -> Any:
    yield node
    if isinstance(node, dict):
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item)


def _hcms(config: Any) -> list[Json]:
    return [
        n["typed_config"]
        for n in _walk(config)
        if isinstance(n, dict) and n.get("name") == "envoy.filters.network.http_connection_manager"
    ]


def _secrets() -> dict[str, Json]:
    return {
        "default": {"tls_certificate": {"certificate_chain": {"filename": "/c"}}},
        "ROOTCA": {"validation_context": {"trusted_ca": {"filename": "/r"}}},
    }


def test_the_copy_is_the_dump_made_static() -> None:
    dump = config_dump(CLIENT)
    ports = {22001: 31001, 22003: 31003, 21001: 32001}  # the server's inbound too
    logs = {"/plait/run/bench-client-0.access.log": "/copy/client.log"}
    out = staticcopy.static_bootstrap(dump, _secrets(), ports=ports, paths=logs)
    parts = staticcopy.sections(dump)
    boot = parts["BootstrapConfigDump"]["bootstrap"]
    assert "dynamic_resources" not in out
    for key in ("admin", "stats_config", "stats_flush_interval", "overload_manager"):
        assert out[key] == boot[key], key
    assert out["layered_runtime"] == boot["layered_runtime"]
    meta = {**boot["node"]["metadata"], "PLAIT_ACCESS_LOG": "/copy/client.log"}
    assert out["node"] == {**boot["node"], "metadata": meta}
    dynamic = [c["cluster"] for c in parts["ClustersConfigDump"]["dynamic_active_clusters"]]
    static = {c["name"]: c for c in out["static_resources"]["clusters"]}
    assert sorted(static) == sorted(c["name"] for c in dynamic)  # no xds-grpc, no sds-grpc
    endpoints = {
        e["endpoint_config"]["cluster_name"]: e["endpoint_config"]
        for e in parts["EndpointsConfigDump"]["dynamic_endpoint_configs"]
    }
    eds = [c for c in dynamic if c.get("type") == "EDS"]
    assert eds, "plait's outbound clusters come over EDS"
    for cluster in eds:
        copied = static[cluster["name"]]
        assert copied["type"] == "STATIC" and "eds_cluster_config" not in copied
        want = endpoints[cluster["eds_cluster_config"].get("service_name") or cluster["name"]]
        got = copied["load_assignment"]["endpoints"]
        assert [lb["metadata"] for e in got for lb in e["lb_endpoints"] if "metadata" in lb] == [
            lb["metadata"]
            for e in want["endpoints"]
            for lb in e["lb_endpoints"]
            if "metadata" in lb
        ]  # the labels the stats logger reads
    to_server = static["outbound|8080||bench-server.default.svc.cluster.local"]
    (endpoint,) = to_server["load_assignment"]["endpoints"][0]["lb_endpoints"]
    assert endpoint["endpoint"]["address"]["socket_address"]["port_value"] == 32001
    assert sorted(staticcopy.listener_ports(dump)) == [22001, 22003]
    moved = {
        x["name"]: x["address"]["socket_address"]["port_value"]
        for x in out["static_resources"]["listeners"]
    }
    assert sorted(moved.values()) == [31001, 31003]
    assert sorted(moved) == sorted(x["name"] for x in staticcopy_listeners(dump))
    routes = {
        r["route_config"]["name"]: {k: v for k, v in r["route_config"].items() if k != "@type"}
        for r in parts["RoutesConfigDump"]["dynamic_route_configs"]
    }
    with_rds = _hcms(staticcopy_listeners(dump))
    inlined = _hcms(out["static_resources"]["listeners"])
    assert [h["rds"]["route_config_name"] for h in with_rds if "rds" in h]
    assert len(inlined) == len(with_rds)
    for before, after in zip(with_rds, inlined, strict=True):
        assert "rds" not in after
        if "rds" in before:
            assert after["route_config"] == routes[before["rds"]["route_config_name"]]
    assert {s["name"] for s in out["static_resources"]["secrets"]} == {"default", "ROOTCA"}
    flat = json.dumps(out)
    assert "sds_config" not in flat and '"ads"' not in flat and "xds-grpc" not in flat
    assert "/copy/client.log" in flat and "/plait/run/bench-client-0.access.log" not in flat


def staticcopy_listeners(dump: Json) -> list[Json]:
    entries = staticcopy.sections(dump)["ListenersConfigDump"]["dynamic_listeners"]
    return [e["active_state"]["listener"] for e in entries]


def test_a_secret_not_given_is_an_error() -> None:
    with pytest.raises(staticcopy.StaticCopyError, match="ROOTCA"):
        staticcopy.static_bootstrap(config_dump(SERVER), {"default": _secrets()["default"]})


def test_a_route_not_in_the_dump_is_an_error() -> None:
    dump = config_dump(SERVER)
    for part in dump["configs"]:
        part.pop("dynamic_route_configs", None)
    with pytest.raises(staticcopy.StaticCopyError, match="route configuration"):
        staticcopy.static_bootstrap(dump, _secrets())


def test_a_warming_cluster_is_an_error() -> None:
    dump = config_dump(SERVER)
    clusters = staticcopy.sections(dump)["ClustersConfigDump"]
    clusters["dynamic_warming_clusters"] = [{"cluster": {"name": "late"}}]
    with pytest.raises(staticcopy.StaticCopyError, match="late"):
        staticcopy.static_bootstrap(dump, _secrets())


def test_a_config_source_left_over_is_an_error() -> None:
    dump = config_dump(SERVER)
    listener = staticcopy_listeners(dump)[0]
    listener["filter_chains"][0]["filters"][0]["config_discovery"] = {"config_source": {"ads": {}}}
    with pytest.raises(staticcopy.StaticCopyError, match="dynamic config source"):
        staticcopy.static_bootstrap(dump, _secrets())


@pytest.mark.parametrize("workload", [SERVER, CLIENT])
def test_envoy_validates_the_copy(workload: str, tmp_path: Path) -> None:
    ca = CertificateAuthority.load(tmp_path / "ca", "cluster.local", create=True)
    cert = meshid.static_cert(ca, SpiffeId("cluster.local", "default", workload), tmp_path)
    logs = {f"/plait/run/{workload}-0.access.log": str(tmp_path / "access.log")}
    out = staticcopy.static_bootstrap(
        config_dump(workload), staticcopy.file_secrets(cert), paths=logs
    )
    path = tmp_path / "static.json"
    path.write_text(json.dumps(out))
    done = subprocess.run(
        [str(find_envoy()), "--mode", "validate", "-c", str(path), "--log-level", "error"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "OK" in done.stdout
