"""Sidecar scoping through real Envoys: a `client` scoped to `echo` and `mirror` holds only
their clusters, calls outside its scope follow the Sidecar's outboundTrafficPolicy
(REGISTRY_ONLY: 502 from the sidecar; ALLOW_ANY: passed through), and an edit outside its
scope sends its Envoy nothing (its xDS update counters stay), while one inside does; and
`exportTo` hides a VirtualService's rules and a Service's cluster from the namespaces it
does not name."""

from __future__ import annotations

from typing import Any

from labkit import Lab, statuses
from meshkit import get_json

# `outside`: a service the client's Sidecar does not import (an echo server of its own).
LAB_FILES = {
    "outside.yaml": """apiVersion: v1
kind: Service
metadata: {name: outside}
spec:
  selector: {app: outside}
  ports: [{name: http, port: 8080, targetPort: 8080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: outside}
spec:
  replicas: 1
  selector: {matchLabels: {app: outside}}
  template:
    metadata: {labels: {app: outside}}
    spec:
      containers:
        - {name: outside, image: plait/lab, command: [python, echo.py], ports: [{containerPort: 8080}]}
"""
}


def client_sidecar(mode: str) -> str:
    return f"""apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {{name: client}}
spec:
  workloadSelector: {{labels: {{app: client}}}}
  egress:
  - hosts:
    - ./echo.default.svc.cluster.local
    - ./mirror.default.svc.cluster.local
  outboundTrafficPolicy: {{mode: {mode}}}
"""


def route_header(host: str, value: str) -> str:
    """A VirtualService for `host` that sets a request header (an edit of its routes)."""
    return f"""apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: {host}}}
spec:
  hosts: [{host}]
  http:
  - headers: {{request: {{set: {{x-edit: "{value}"}}}}}}
    route: [{{destination: {{host: {host}}}}}]
"""


OUTBOUND_RDS = ".rds.outbound.update_success"  # the outbound route table's updates


def dump(lab: Lab, workload: str) -> dict[str, Any]:
    admin = lab.proxy(workload)["admin"]
    found: dict[str, Any] = get_json(f"http://{admin}/config_dump?include_eds", timeout=5.0)
    return found


def outbound_hosts(lab: Lab, workload: str) -> set[str]:
    """The hosts of the `outbound|...` clusters in the workload's Envoy (config dump)."""
    for section in dump(lab, workload)["configs"]:
        if section["@type"].endswith("ClustersConfigDump"):
            return {
                c["cluster"]["name"].rsplit("|", 1)[-1]
                for c in section.get("dynamic_active_clusters", [])
                if c["cluster"]["name"].startswith("outbound|")
            }
    raise AssertionError("no clusters in the config dump")


def updates(lab: Lab, workload: str) -> dict[str, int]:
    """Every xDS update counter of the workload's Envoy (CDS, LDS, each RDS table and each
    EDS cluster: attempts, successes, rejections, no-change responses)."""
    return {
        name: value
        for name, value in lab.envoy_stats(workload).items()
        if ".cds." in name or ".lds." in name or ".rds." in name or name.endswith("update_attempt")
        if name.rsplit(".", 1)[-1]
        in ("update_attempt", "update_success", "update_rejected", "update_empty", "version")
    }


async def test_a_scoped_proxy_holds_only_the_clusters_of_its_two_services(lab: Lab) -> None:
    assert "outside.default.svc.cluster.local" in outbound_hosts(lab, "client")
    with lab.config("client-sidecar", client_sidecar("REGISTRY_ONLY")):
        assert outbound_hosts(lab, "client") == {
            "echo.default.svc.cluster.local",
            "mirror.default.svc.cluster.local",
        }
        # other proxies keep the whole mesh
        assert "outside.default.svc.cluster.local" in outbound_hosts(lab, "echo-v1")
        assert statuses(await lab.send("http://echo:8080/in-scope", 5)) == {200: 5}
        assert statuses(await lab.send("http://mirror:8080/in-scope", 5)) == {200: 5}
    assert "outside.default.svc.cluster.local" in outbound_hosts(lab, "client")


async def test_calls_outside_the_scope_follow_the_sidecars_outbound_traffic_policy(
    lab: Lab,
) -> None:
    outside_app = lab.proxy("outside")["app"]  # the app's own address, not a service name
    lab.reset_counts("outside")
    assert statuses(await lab.send("http://outside:8080/unscoped", 3)) == {200: 3}
    with lab.config("client-sidecar", client_sidecar("REGISTRY_ONLY")):
        refused = await lab.send("http://outside:8080/blocked", 4)
        assert statuses(refused) == {502: 4}
        direct = await lab.send(f"http://{outside_app}/blocked-direct", 2)
        assert statuses(direct) == {502: 2}
        assert set(next(iter(lab.upstream_counts("outside").values()))) == {"/unscoped"}
        lab.apply("client-sidecar", client_sidecar("ALLOW_ANY"))
        passed = await lab.send(f"http://{outside_app}/passed-through", 3)
        assert statuses(passed) == {200: 3}
        assert all((r.replica or "").startswith("outside") for r in passed), passed
    counts = next(iter(lab.upstream_counts("outside").values()))
    assert counts == {"/unscoped": 3, "/passed-through": 3}


async def test_an_edit_outside_the_scope_sends_the_proxy_nothing(lab: Lab) -> None:
    with lab.config("client-sidecar", client_sidecar("REGISTRY_ONLY")):
        client_before, echo_before = updates(lab, "client"), updates(lab, "echo-v1")
        assert {"cluster_manager.cds.update_success", "listener_manager.lds.update_success"} <= set(
            client_before
        )
        with lab.config("outside-vs", route_header("outside", "1")):
            lab.apply("outside-vs", route_header("outside", "2"))
            assert updates(lab, "client") == client_before
            echo_after = updates(lab, "echo-v1")  # an unscoped proxy got the edits
            assert echo_after != echo_before
            rds = [n for n in echo_after if n.endswith(OUTBOUND_RDS)]
            assert rds and all(echo_after[n] >= echo_before.get(n, 0) + 2 for n in rds)
        assert updates(lab, "client") == client_before  # and the removal neither
        with lab.config("echo-vs", route_header("echo", "in-scope")):
            after = updates(lab, "client")
            rds = [n for n in after if n.endswith(OUTBOUND_RDS)]
            assert rds and all(after[n] == client_before[n] + 1 for n in rds), (
                client_before,
                after,
            )
            replies = await lab.send("http://echo:8080/edited", 2)
            assert statuses(replies) == {200: 2}
            seen = [{k.lower(): v for k, v in r.body["headers"].items()} for r in replies]
            assert all(h.get("x-edit") == "in-scope" for h in seen), seen


async def test_export_to_decides_which_namespaces_see_a_virtual_service_and_a_service(
    lab: Lab,
) -> None:
    exported = route_header("echo", "exported").replace(
        "  hosts: [echo]\n", '  hosts: [echo]\n  exportTo: ["."]\n'
    )
    with lab.config("echo-vs", exported):  # the lab is all in `default`: "." is everyone
        replies = await lab.send("http://echo:8080/exported", 2)
        seen = [{k.lower(): v for k, v in r.body["headers"].items()} for r in replies]
        assert all(h.get("x-edit") == "exported" for h in seen), seen
        lab.apply("echo-vs", exported.replace('exportTo: ["."]', "exportTo: [elsewhere]"))
        replies = await lab.send("http://echo:8080/hidden", 2)
        assert statuses(replies) == {200: 2}  # routed by default, without the rule
        seen = [{k.lower(): v for k, v in r.body["headers"].items()} for r in replies]
        assert all("x-edit" not in h for h in seen), seen
    hidden = LAB_FILES["outside.yaml"].replace(
        "metadata: {name: outside}\nspec:\n  selector",
        "metadata: {name: outside, annotations: {networking.istio.io/exportTo: elsewhere}}\n"
        "spec:\n  selector",
        1,
    )
    assert hidden != LAB_FILES["outside.yaml"]
    try:  # the lab's own file, edited in place (and restored)
        lab.apply("outside", hidden)
        assert "outside.default.svc.cluster.local" not in outbound_hosts(lab, "client")
    finally:
        lab.apply("outside", LAB_FILES["outside.yaml"])
    assert "outside.default.svc.cluster.local" in outbound_hosts(lab, "client")
