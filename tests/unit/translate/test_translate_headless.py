"""Headless Services for captured sidecars (`translate.headless`): a listener per pod and
TCP port, a filter chain per pod on an HTTP port's listener with the host's own route
table, ORIGINAL_DST clusters with istiod's mTLS rule; explicit sidecars keep EDS by name;
scoping and the endpoint fast path keep the listeners right; and Envoy's verdict."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from capture_kit import hcms, tcp_cluster
from envoy.config.cluster.v3 import cluster_pb2
from test_translate_envoy_validate import assert_envoy_accepts
from translate_kit import clusters, listeners, routes, sidecar

from plait.api import load_text
from plait.model.labels import Labels
from plait.model.proxy import Proxy, Traffic
from plait.model.registry import PortMap, WorkloadInstance
from plait.model.snapshot import MeshSnapshot, build_snapshot, with_instances
from plait.translate import names, typeurls
from plait.translate.proxy import Translator
from plait.translate.resource import ProxyConfig, Resource

MESH = """apiVersion: v1
kind: Service
metadata: {name: db}
spec:
  clusterIP: None
  selector: {app: db}
  ports: [{name: tcp-pg, port: 5432}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  clusterIP: None
  selector: {app: web}
  ports: [{name: http, port: 8080, targetPort: 9080}]
---
apiVersion: v1
kind: Service
metadata: {name: reviews}
spec:
  clusterIP: 10.96.0.9
  selector: {app: reviews}
  ports: [{name: http, port: 8080}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web}
spec:
  host: web
  subsets: [{name: v1, labels: {version: v1}}]
"""
ROUTED = """---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web}
spec:
  hosts: [web]
  http:
  - route: [{destination: {host: web, subset: v1}}]
    timeout: 3s
"""
SCOPED = """---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: default}
spec:
  egress: [{hosts: [./web.default.svc.cluster.local]}]
"""
DB = "db.default.svc.cluster.local"
WEB = "web.default.svc.cluster.local"


def pod(name: str, ip: str, sidecar_: bool = True, **labels: str) -> WorkloadInstance:
    return WorkloadInstance(
        name=name,
        workload=name.rsplit("-", 1)[0],
        namespace="default",
        labels=Labels.of(labels),
        service_account=labels["app"],
        address=ip,
        ports=PortMap(),  # the Service's targetPort, as in Kubernetes
        sidecar=sidecar_,
    )


DB0 = pod("db-0", "10.100.0.5", app="db")
DB1 = pod("db-1", "10.100.0.6", app="db")
DB2 = pod("db-2", "10.100.0.8", app="db")
WEB0 = pod("web-0", "10.100.0.7", app="web", version="v1")
PODS = (DB0, DB1, WEB0)


def mesh(text: str = MESH, pods: tuple[WorkloadInstance, ...] = PODS) -> MeshSnapshot:
    loaded = load_text(text, "mesh.yaml")
    assert not loaded.errors, [str(m) for m in loaded.errors]
    return build_snapshot(loaded.resources, pods, 1)


def captured(name: str = "frontend-0", ip: str = "10.100.0.2") -> Proxy:
    proxy = sidecar(name, inbound_port=None, outbound_port=None, app_port=32000)
    return replace(proxy, address=ip, traffic=Traffic.CAPTURED)


def config(snap: MeshSnapshot, proxy: Proxy | None = None) -> ProxyConfig:
    return Translator(snap).config_for(proxy or captured())


def test_each_pod_of_a_tcp_port_gets_a_listener_to_the_pod_the_app_chose() -> None:
    lds = listeners(config(mesh()))
    for ip in ("10.100.0.5", "10.100.0.6"):
        listener = lds[f"{ip}_5432"]
        assert listener.address.socket_address.address == ip
        assert not listener.bind_to_port.value  # virtualOutbound hands the connection over
        assert tcp_cluster(listener.filter_chains[0].filters) == f"outbound-pod|5432||{DB}"


def test_each_pod_of_an_http_port_gets_a_chain_reading_the_hosts_own_table() -> None:
    """At the endpoint's port (the targetPort, where the app connects), matched by the
    pod's /32; its table routes any Host (a request by pod IP names no service)."""
    cfg = config(mesh())
    lds = listeners(cfg)
    assert "0.0.0.0_8080" in lds  # reviews' cluster IP, as before
    (chain,) = lds["0.0.0.0_9080"].filter_chains
    assert [
        (r.address_prefix, r.prefix_len.value) for r in chain.filter_chain_match.prefix_ranges
    ] == [("10.100.0.7", 32)]
    (hcm,) = hcms(lds["0.0.0.0_9080"])
    assert hcm.rds.route_config_name == f"headless|8080|{WEB}"
    (vhost,) = routes(cfg)[f"headless|8080|{WEB}"].virtual_hosts
    assert list(vhost.domains) == ["*"]
    assert vhost.routes[0].route.cluster == f"outbound-pod|8080||{WEB}"


def test_original_dst_clusters_carry_mtls_when_every_pod_has_a_sidecar() -> None:
    cds = clusters(config(mesh()))
    for name in (
        f"outbound-pod|5432||{DB}",
        f"outbound-pod|8080||{WEB}",
        f"outbound-pod|8080|v1|{WEB}",
    ):
        cluster = cds[name]
        assert cluster.type == cluster_pb2.Cluster.ORIGINAL_DST, name
        assert cluster.lb_policy == cluster_pb2.Cluster.CLUSTER_PROVIDED
        assert cluster.transport_socket.name == "envoy.transport_sockets.tls", name
        assert not cluster.transport_socket_matches
        assert cluster.metadata.filter_metadata["plait"]["service"] in (DB, WEB)  # telemetry
    assert cds[f"outbound|5432||{DB}"].type == cluster_pb2.Cluster.EDS  # still there, by name
    # one pod without a sidecar: plain text to all of them (istiod's headless rule)
    plain = clusters(config(mesh(pods=(DB0, replace(DB1, sidecar=False), WEB0))))
    assert not plain[f"outbound-pod|5432||{DB}"].HasField("transport_socket")
    assert plain[f"outbound-pod|8080||{WEB}"].transport_socket.name == "envoy.transport_sockets.tls"


def test_virtual_service_rules_apply_and_send_to_the_chosen_pod() -> None:
    cfg = config(mesh(MESH + ROUTED))
    (vhost,) = routes(cfg)[f"headless|8080|{WEB}"].virtual_hosts
    (route,) = vhost.routes
    assert route.route.cluster == f"outbound-pod|8080|v1|{WEB}"
    assert route.route.timeout.seconds == 3


def test_a_pod_reaches_itself_without_its_outbound_listener() -> None:
    lds = listeners(config(mesh(), captured("db-0", "10.100.0.5")))
    assert "10.100.0.6_5432" in lds and "10.100.0.5_5432" not in lds


def test_explicit_sidecars_and_gateways_keep_eds_by_name() -> None:
    cfg = config(mesh(), sidecar("frontend-0"))
    assert not [n for n in clusters(cfg) if n.startswith("outbound-pod|")]
    assert not [n for n in routes(cfg) if n.startswith("headless|")]
    assert not [n for n in listeners(cfg) if n.startswith("10.100.")]


def test_a_scope_reaches_only_the_pods_of_its_hosts() -> None:
    cfg = config(mesh(MESH + SCOPED))
    assert not [n for n in listeners(cfg) if n.endswith("_5432")]
    assert "0.0.0.0_9080" in listeners(cfg)
    assert not [n for n in clusters(cfg) if DB in n]


def test_an_endpoint_change_of_a_headless_service_changes_the_listeners() -> None:
    """`with_instances` makes an endpoint-only change; the captured sidecar's listeners
    name the pods, so they must follow (the fast path must not keep them)."""
    resources = load_text(MESH, "mesh.yaml").resources
    first = build_snapshot(resources, PODS, 1)
    before = Translator(first)
    proxies = (captured(), sidecar("explicit-0"))
    for proxy in proxies:
        before.config_for(proxy)
    grown, hosts = with_instances(first, resources, PODS, (*PODS, DB2), 2)
    assert hosts == {DB}
    after = Translator(grown, previous=before)
    for proxy in proxies:
        fresh = Translator(grown).config_for(proxy)
        got = after.config_for(proxy)
        assert {n: r.body for n, r in listeners_of(got).items()} == {
            n: r.body for n, r in listeners_of(fresh).items()
        }, proxy.id
    assert "10.100.0.8_5432" in listeners(after.config_for(captured()))
    shrunk, _ = with_instances(grown, resources, (*PODS, DB2), (DB0, WEB0), 3)
    gone = listeners(Translator(shrunk, previous=after).config_for(captured()))
    assert [n for n in gone if n.endswith("_5432")] == ["10.100.0.5_5432"]


def listeners_of(cfg: ProxyConfig) -> dict[str, Resource]:
    return dict(cfg.resources(typeurls.LISTENER))


def test_an_endpoint_change_elsewhere_keeps_the_fast_path() -> None:
    resources = load_text(MESH, "mesh.yaml").resources
    pods = (*PODS, pod("reviews-0", "10.100.0.9", app="reviews"))
    first = build_snapshot(resources, pods, 1)
    before = Translator(first)
    before.config_for(captured())
    reviews = pod("reviews-1", "10.100.0.10", app="reviews")
    grown, _ = with_instances(first, resources, pods, (*pods, reviews), 2)
    after = Translator(grown, previous=before)
    after.config_for(captured())
    assert after.built.endpoint_hosts == {"reviews.default.svc.cluster.local"}
    assert after.built.configs == 0


def test_envoy_accepts_the_captured_config(tmp_path: Path) -> None:
    assert_envoy_accepts(tmp_path, config(mesh(MESH + ROUTED)))


def test_names() -> None:
    assert names.original_dst_cluster(DB, 5432) == f"outbound-pod|5432||{DB}"
    assert names.headless_route(WEB, 8080) == f"headless|8080|{WEB}"


POLICY = """---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: db}
spec:
  host: db
  trafficPolicy:
    connectionPool: {tcp: {maxConnections: MAX}}
    tls: {mode: MODE}
"""


def db_policy(max_connections: int, mode: str) -> str:
    return MESH + POLICY.replace("MAX", str(max_connections)).replace("MODE", mode)


def test_destination_rule_policy_and_tls_carry_over_and_follow_edits() -> None:
    before = Translator(mesh(db_policy(7, "ISTIO_MUTUAL")))
    twin = clusters(before.config_for(captured()))[f"outbound-pod|5432||{DB}"]
    assert twin.circuit_breakers.thresholds[0].max_connections.value == 7
    assert twin.transport_socket.name == "envoy.transport_sockets.tls"
    after = Translator(mesh(db_policy(9, "DISABLE")), previous=before)
    twin = clusters(after.config_for(captured()))[f"outbound-pod|5432||{DB}"]
    assert twin.circuit_breakers.thresholds[0].max_connections.value == 9
    assert not twin.HasField("transport_socket")  # the rule says plain text


SNIFFED = MESH.replace("ports: [{name: tcp-pg, port: 5432}]", "ports: [{port: 5432}]")


def test_an_undeclared_port_sniffs_http_per_pod(tmp_path: Path) -> None:
    cfg = config(mesh(SNIFFED))
    listener = listeners(cfg)["0.0.0.0_5432"]
    assert [f.name for f in listener.listener_filters] == ["envoy.filters.listener.http_inspector"]
    by_name = {c.name: c for c in listener.filter_chains}
    http = by_name["5432_http_10.100.0.5"]
    assert list(http.filter_chain_match.application_protocols) == ["http/1.1", "http/1.0", "h2c"]
    assert tcp_cluster(by_name["5432_tcp_10.100.0.5"].filters) == f"outbound-pod|5432||{DB}"
    assert f"headless|5432|{DB}" in routes(cfg)
    assert_envoy_accepts(tmp_path, cfg)


def test_a_pod_chain_shares_a_port_with_cluster_ip_services() -> None:
    """web's pods serve 8080 like reviews' cluster IP: one listener, the cluster IPs'
    chain reading the outbound table, the pod's chain its host's table."""
    cfg = config(mesh(MESH.replace("targetPort: 9080", "targetPort: 8080")))
    chains = {c.name: c for c in listeners(cfg)["0.0.0.0_8080"].filter_chains}
    assert sorted(chains) == ["8080_http", "8080_http_10.100.0.7"]
    shared = chains["8080_http"].filter_chain_match.prefix_ranges
    assert [r.address_prefix for r in shared] == ["10.96.0.9"]
    tables = [h.rds.route_config_name for h in hcms(listeners(cfg)["0.0.0.0_8080"])]
    assert tables == ["outbound", f"headless|8080|{WEB}"]
