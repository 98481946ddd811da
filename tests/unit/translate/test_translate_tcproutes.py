"""VirtualService `tcp` routes for captured sidecars: the first rule that fits the port
and the source, weights as for `http` routes, unknown destinations dropped."""

from __future__ import annotations

from dataclasses import replace

from translate_kit import sidecar, snapshot

from plait.model.labels import Labels
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
