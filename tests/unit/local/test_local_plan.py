"""What `plait up` starts: replicas from Deployments, commands, gateway server ports."""

from __future__ import annotations

import sys
from pathlib import Path

from plait.api import load_text
from plait.local.plan import ReplicaSpec, make_plan, replicas_of
from plait.model.labels import Labels
from plait.model.snapshot import build_snapshot
from plait.podnet.names import PodDns
from plait.sources.directory import DirectorySource

SHOP = Path(__file__).resolve().parents[3] / "examples" / "shop"


def deployment(
    name: str,
    command: str = "[python]",
    args: str = "[-m, app.x]",
    extra: str = "",
    namespace: str = "default",
) -> str:
    return f"""---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  {extra}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}, version: v1}}}}
    spec:
      containers:
      - name: main
        command: {command}
        args: {args}
        env:
        - {{name: A, value: "1"}}
        - {{name: EMPTY}}
      - name: second
        command: [ignored]
"""


def plan_of(text: str) -> tuple[ReplicaSpec, ...]:
    result = load_text(text, "mesh.yaml")
    assert not result.errors, [str(m) for m in result.errors]
    return make_plan(result.resources, build_snapshot(result.resources, (), 1)).replicas


def test_one_replica_per_deployment_replica() -> None:
    replicas = plan_of(deployment("orders", extra="replicas: 3", namespace="shop"))
    assert [r.instance for r in replicas] == ["orders-0", "orders-1", "orders-2"]
    first = replicas[0]
    assert first == ReplicaSpec(
        instance="orders-0",
        workload="orders",
        namespace="shop",
        labels=Labels.of({"app": "orders", "version": "v1"}),
        service_account="default",
        command=(sys.executable, "-m", "app.x"),
        env=(("A", "1"), ("EMPTY", "")),
    )


def test_replicas_default_to_one_and_zero_starts_nothing() -> None:
    assert len(plan_of(deployment("a"))) == 1
    assert plan_of(deployment("a", extra="replicas: 0")) == ()


def test_service_account_comes_from_the_pod_template() -> None:
    text = deployment("a").replace("    spec:\n", "    spec:\n      serviceAccountName: alpha\n")
    (replica,) = plan_of(text)
    assert replica.service_account == "alpha"


def test_a_template_annotated_inject_false_runs_without_sidecar() -> None:
    annotated = deployment("legacy").replace(
        "    metadata: {labels: {app: legacy, version: v1}}\n",
        "    metadata:\n      labels: {app: legacy}\n"
        '      annotations: {sidecar.istio.io/inject: "false"}\n',
    )
    (legacy,) = plan_of(annotated)
    assert legacy.sidecar is False
    (plain,) = plan_of(deployment("a"))
    assert plain.sidecar is True


def test_python_runs_with_plaits_interpreter_and_other_commands_are_kept() -> None:
    (py3,) = plan_of(deployment("a", command="[python3, app.py]", args="[--x]"))
    assert py3.command == (sys.executable, "app.py", "--x")
    (node,) = plan_of(deployment("a", command="[node, server.js]", args="[]"))
    assert node.command == ("node", "server.js")
    (py_later,) = plan_of(deployment("a", command="[env, python]", args="[]"))
    assert py_later.command == ("env", "python")


def test_replicas_of_takes_the_first_container() -> None:
    result = load_text(deployment("a", command="[run]", args="[--fast]"), "mesh.yaml")
    (replica,) = replicas_of(result.resources[0])
    assert replica.command == ("run", "--fast")


def test_shop_plan() -> None:
    view = DirectorySource(SHOP).load()
    plan = make_plan(view.resources, build_snapshot(view.resources, (), 1))
    assert [r.instance for r in plan.replicas] == [
        "frontend-0",
        "orders-0",
        "orders-1",
        "inventory-0",
        "payment-0",
        "risk-assessment-0",
        "reviews-v1-0",
        "reviews-v2-0",
        "recommendations-0",
        "cache-0",
    ]
    reviews = next(r for r in plan.replicas if r.instance == "reviews-v2-0")
    assert reviews.labels == Labels.of({"app": "reviews", "version": "v2"})
    assert reviews.service_account == "reviews"
    assert reviews.command == (sys.executable, "-m", "app.reviews")
    assert ("SHOW_STARS", "true") in reviews.env
    assert plan.gateway_server_ports == (80,)


def test_gateway_server_ports_are_the_http_ports_in_order() -> None:
    text = """
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: b}
spec:
  servers:
  - port: {number: 8000, name: http, protocol: HTTP}
    hosts: ["*"]
  - port: {number: 9000, name: tcp, protocol: TCP}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: a}
spec:
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*"]
  - port: {number: 8000, name: http2, protocol: HTTP2}
    hosts: ["*"]
"""
    result = load_text(text, "mesh.yaml")
    plan = make_plan(result.resources, build_snapshot(result.resources, (), 1))
    assert plan.replicas == ()
    assert plan.gateway_server_ports == (80, 8000)


def test_a_templates_dns_settings_go_to_its_replicas() -> None:
    text = deployment("a").replace(
        "    spec:\n",
        "    spec:\n      dnsConfig:\n        nameservers: [127.0.0.1]\n"
        "        options: [{name: ndots, value: '2'}]\n",
    )
    (replica,) = plan_of(text)
    assert replica.dns == PodDns("ClusterFirst", ("127.0.0.1",), (), (("ndots", "2"),))
    (plain,) = plan_of(deployment("a"))
    assert plain.dns == PodDns()
