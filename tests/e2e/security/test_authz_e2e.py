"""AuthorizationPolicy with real callers: the description's example (GET only from
order-service's principal), DENY before ALLOW, deny-all, and denial as 403."""

from __future__ import annotations

from pathlib import Path

from labkit import Lab, statuses
from seckit import plaintext_get, spiffe, xfcc_uris

from policykit import authorization_policy as policy

SEEDS = Path(__file__).resolve().parents[3] / "examples" / "seeds"


def workload(name: str, app: str, service_account: str) -> str:
    return f"""apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: {app}}}}}
  template:
    metadata: {{labels: {{app: {app}, version: v1}}}}
    spec:
      serviceAccountName: {service_account}
      containers:
        - {{name: {name}, image: plait/lab, command: [python, echo.py]}}
"""


LAB_FILES = {
    "reviews.yaml": workload("reviews", "reviews", "reviews")
    + """---
apiVersion: v1
kind: Service
metadata: {name: reviews}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 9080, targetPort: 8080}]
""",
    "order-service.yaml": workload("order-service", "order-service", "order-service"),
}
REVIEWS = "http://reviews:9080"


async def test_the_descriptions_policy_allows_get_from_order_service_only(lab: Lab) -> None:
    example = (SEEDS / "authorization.yaml").read_text()
    with lab.config("reviews-authz", example):
        allowed = await lab.send(f"{REVIEWS}/reviews/1", 10, via="order-service")
        assert statuses(allowed) == {200: 10}
        wrong_method = await lab.send(f"{REVIEWS}/reviews/1", 5, method="POST", via="order-service")
        assert statuses(wrong_method) == {403: 5}
        assert all(r.body == "RBAC: access denied" for r in wrong_method)
        other_caller = await lab.send(f"{REVIEWS}/reviews/1", 5, via="client")
        assert statuses(other_caller) == {403: 5}
        assert all(r.body == "RBAC: access denied" for r in other_caller)
    # no ALLOW policy: everything is allowed again
    assert statuses(await lab.send(f"{REVIEWS}/reviews/1", 3, via="client")) == {200: 3}


async def test_deny_beats_allow(lab: Lab) -> None:
    allow = policy(
        "allow-client",
        """  selector: {matchLabels: {app: reviews}}
  rules:
  - from: [{source: {principals: [cluster.local/ns/default/sa/client]}}]""",
    )
    deny = policy(
        "deny-admin",
        """  selector: {matchLabels: {app: reviews}}
  action: DENY
  rules:
  - to: [{operation: {paths: [/admin/*]}}]""",
    )
    with lab.config("allow", allow), lab.config("deny", deny):
        assert statuses(await lab.send(f"{REVIEWS}/reviews/1", 4, via="client")) == {200: 4}
        denied = await lab.send(f"{REVIEWS}/admin/users", 4, via="client")
        assert statuses(denied) == {403: 4}


async def test_an_empty_policy_denies_everything_and_a_namespace_rule_admits(lab: Lab) -> None:
    deny_all = policy("deny-all", "  selector: {matchLabels: {app: reviews}}")
    with lab.config("deny-all", deny_all):
        assert statuses(await lab.send(f"{REVIEWS}/x", 3, via="order-service")) == {403: 3}
    same_namespace = policy(
        "from-default",
        """  selector: {matchLabels: {app: reviews}}
  rules:
  - from: [{source: {namespaces: [default]}}]
    to: [{operation: {notPaths: [/private*]}}]
    when:
    - {key: "request.headers[x-team]", values: [blue]}""",
    )
    with lab.config("from-default", same_namespace):
        ok = await lab.send(f"{REVIEWS}/public", 3, headers={"x-team": "blue"}, via="client")
        assert statuses(ok) == {200: 3}
        wrong_team = await lab.send(f"{REVIEWS}/public", 3, headers={"x-team": "red"})
        assert statuses(wrong_team) == {403: 3}
        private = await lab.send(f"{REVIEWS}/private/1", 3, headers={"x-team": "blue"})
        assert statuses(private) == {403: 3}


async def test_plain_text_callers_have_no_principal(lab: Lab) -> None:
    """PERMISSIVE takes plain text, but a plaintext caller matches no `principals` rule."""
    allow = policy(
        "only-clients",
        """  selector: {matchLabels: {app: reviews}}
  rules:
  - from: [{source: {principals: ["*"]}}]""",
    )
    inbound = lab.proxy("reviews")["inbound"]
    with lab.config("only-clients", allow):
        assert plaintext_get(inbound, "/x").startswith(b"HTTP/1.1 403")
        assert statuses(await lab.send(f"{REVIEWS}/x", 3, via="client")) == {200: 3}


EDGE = """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: edge}
spec:
  hosts: [shop.lab.example]
  gateways: [lab-gateway]
  http:
  - route: [{destination: {host: reviews}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: edge-guard, namespace: istio-system}
spec:
  selector: {matchLabels: {istio: ingressgateway}}
  action: DENY
  rules:
  - to: [{operation: {paths: [/internal/*]}}]
"""


async def test_a_policy_selecting_the_ingress_gateway_guards_the_edge(lab: Lab) -> None:
    host = {"Host": "shop.lab.example"}
    with lab.config("edge", EDGE):
        assert statuses(await lab.send("/reviews/1", 4, via="gateway", headers=host)) == {200: 4}
        denied = await lab.send("/internal/metrics", 4, via="gateway", headers=host)
        assert statuses(denied) == {403: 4}
        assert all(r.body == "RBAC: access denied" for r in denied)
        # the gateway calls reviews with its own identity, over mTLS
        (reply,) = await lab.send("/reviews/2", 1, via="gateway", headers=host)
        assert xfcc_uris(reply) == [spiffe("istio-system", "istio-ingressgateway-service-account")]
