"""VirtualService `tcp` routes for captured sidecars: the first rule that fits the port
and the source, weights as for `http` routes, unknown destinations dropped."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from translate_kit import sidecar, snapshot

from plait.api import load_text
from plait.model.labels import Labels
from plait.model.snapshot import build_snapshot
from plait.translate.tcproutes import tcp_route

HOST = "db.default.svc.cluster.local"
MESH = """apiVersion: v1
kind: Service
metadata: {name: db}
spec:
  selector: {app: db}
  ports: [{name: tcp, port: 5432}, {name: tcp-admin, port: 5433}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: db}
spec:
  host: db
  subsets: [{name: a, labels: {v: a}}, {name: b, labels: {v: b}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: db}
spec:
  hosts: [db]
  tcp:
  - match: [{port: 5433}]
    route: [{destination: {host: db, subset: b}, weight: 0}]
  - match: [{sourceLabels: {app: batch}}]
    route: [{destination: {host: db, subset: b}}]
  - match: [{destinationSubnets: [10.0.0.0/8]}]
    route: [{destination: {host: db, subset: a}}]
  - route:
    - {destination: {host: db, subset: a}, weight: 70}
    - {destination: {host: db, subset: b}, weight: 30}
    - {destination: {host: nowhere}, weight: 0}
"""


def test_the_first_fitting_rule_wins_with_its_weights() -> None:
    snap = snapshot(MESH)
    web = sidecar("web-0")
    assert tcp_route(snap, HOST, 5432, web) == (
        (f"outbound|5432|a|{HOST}", 70),
        (f"outbound|5432|b|{HOST}", 30),
    )
    assert tcp_route(snap, HOST, 5433, web) == ((f"outbound|5433|b|{HOST}", 1),)  # lone: all
    batch = replace(web, labels=Labels.of({"app": "batch"}))
    assert tcp_route(snap, HOST, 5432, batch) == ((f"outbound|5432|b|{HOST}", 1),)


def test_no_virtual_service_means_no_route() -> None:
    assert (
        tcp_route(
            snapshot(
                MESH.split("---\napiVersion: networking.istio.io/v1\nkind: VirtualService")[0]
            ),
            HOST,
            5432,
            sidecar(),
        )
        == ()
    )


TLS_MESH = """apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: https, port: 443}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web}
spec:
  host: web
  subsets: [{name: a, labels: {v: a}}, {name: b, labels: {v: b}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web}
spec:
  hosts: [web]
  tls:
  - match: [{sniHosts: [a.example.com], port: 443}]
    route: [{destination: {host: web, subset: a}}]
  - match: [{sniHosts: ["*.example.com"], sourceLabels: {app: other}}]
    route: [{destination: {host: web, subset: b}}]
  - match: [{sniHosts: [b.example.com]}]
    route:
    - {destination: {host: web, subset: a}, weight: 50}
    - {destination: {host: web, subset: b}, weight: 50}
"""
WEB = "web.default.svc.cluster.local"


def test_tls_rules_route_by_sni_in_order() -> None:
    from plait.translate.tcproutes import tls_routes

    assert tls_routes(snapshot(TLS_MESH), WEB, 443, sidecar("client-0")) == (
        (("a.example.com",), ((f"outbound|443|a|{WEB}", 1),)),
        (("b.example.com",), ((f"outbound|443|a|{WEB}", 50), (f"outbound|443|b|{WEB}", 50))),
    )


def test_a_tls_listener_matches_sni_then_falls_back_to_the_service(tmp_path: Path) -> None:
    from capture_kit import assert_envoy_accepts, tcp_cluster
    from translate_kit import listeners as lds_of

    from plait.model.proxy import Traffic
    from plait.translate.proxy import Translator

    snap = build_snapshot(
        load_text(TLS_MESH, "m.yaml").resources, [], 1, cluster_ips={WEB: "10.200.0.9"}
    )
    proxy = replace(
        sidecar("client-0", inbound_port=None, outbound_port=None), traffic=Traffic.CAPTURED
    )
    listener = lds_of(Translator(snap).config_for(proxy))["10.200.0.9_443"]
    assert [f.name for f in listener.listener_filters] == ["envoy.filters.listener.tls_inspector"]
    chains = [(list(c.filter_chain_match.server_names), c.name) for c in listener.filter_chains]
    assert chains == [(["a.example.com"], "tls_0"), (["b.example.com"], "tls_1"), ([], "")]
    assert tcp_cluster(listener.filter_chains[2].filters) == f"outbound|443||{WEB}"
    assert_envoy_accepts(tmp_path, [listener])


def test_a_destination_rule_shapes_tcp_clusters_too() -> None:
    """Connection pool, outlier detection and mTLS settings are cluster settings: a TCP
    service's clusters get them as HTTP ones do."""
    from translate_kit import clusters

    from plait.translate.proxy import Translator

    text = (
        MESH
        + """---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: db-policy}
spec:
  host: db
  trafficPolicy:
    connectionPool: {tcp: {maxConnections: 7, connectTimeout: 2s}}
    outlierDetection: {consecutive5xxErrors: 3, interval: 5s, baseEjectionTime: 30s}
    tls: {mode: ISTIO_MUTUAL}
"""
    )
    text = text.replace(
        "---\\napiVersion: networking.istio.io/v1\\nkind: DestinationRule\\nmetadata: {name: db}\\n"
        "spec:\\n  host: db\\n  subsets: [{name: a, labels: {v: a}}, {name: b, labels: {v: b}}]\\n",
        "",
    )
    cluster = clusters(Translator(snapshot(text)).config_for(sidecar()))[f"outbound|5432||{HOST}"]
    assert cluster.circuit_breakers.thresholds[0].max_connections.value == 7
    assert cluster.connect_timeout.seconds == 2
    assert cluster.outlier_detection.consecutive_5xx.value == 3
    assert cluster.HasField("transport_socket") or cluster.transport_socket_matches
