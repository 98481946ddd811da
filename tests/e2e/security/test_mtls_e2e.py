"""Automatic mTLS between sidecars and PeerAuthentication modes, with real traffic: the
server app sees its caller's SPIFFE ID; STRICT refuses plain text; PERMISSIVE takes both."""

from __future__ import annotations

from labkit import Lab, eventually, statuses
from meshkit import plait
from seckit import plaintext_get, spiffe, xfcc_uris

from policykit import peer_authentication

ECHO = "http://echo:8080"
LAB_FILES = {
    "legacy.yaml": """apiVersion: v1
kind: Service
metadata: {name: legacy}
spec:
  selector: {app: legacy}
  ports: [{name: http, port: 8080, targetPort: 8080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: legacy}
spec:
  replicas: 1
  selector: {matchLabels: {app: legacy}}
  template:
    metadata:
      labels: {app: legacy}
      annotations: {sidecar.istio.io/inject: "false"}
    spec:
      containers:
        - {name: legacy, image: plait/lab, command: [python, echo.py]}
"""
}


def peer_auth(name: str, namespace: str, spec: str) -> str:
    return peer_authentication(name, spec, namespace)


MESH_STRICT = peer_auth("default", "istio-system", "  mtls: {mode: STRICT}")


def handshakes(lab: Lab) -> int:
    """TLS handshakes the client's sidecar made to echo's endpoints."""
    stats = lab.envoy_stats("client")
    return sum(
        v
        for k, v in stats.items()
        if k.startswith("cluster.outbound|8080|") and "echo" in k and k.endswith("ssl.handshake")
    )


async def test_sidecars_speak_mtls_and_the_app_sees_the_callers_identity(lab: Lab) -> None:
    before = handshakes(lab)
    replies = await lab.send(f"{ECHO}/who", 6, concurrency=1)
    assert statuses(replies) == {200: 6}
    for reply in replies:
        assert xfcc_uris(reply) == [spiffe("default", "client")], reply.body
    assert handshakes(lab) > before  # the hop was TLS (new connections since `before`)


async def test_permissive_by_default_takes_plain_text_and_strips_forged_identity(
    lab: Lab,
) -> None:
    inbound = lab.proxy("echo-v1")["inbound"]
    forged = f"x-forwarded-client-cert: URI={spiffe('default', 'admin')}\r\n"
    answer = plaintext_get(inbound, "/plain", forged)
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    assert b"spiffe://" not in answer  # the forged header never reached the app


async def test_strict_refuses_plain_text_while_sidecars_get_through(lab: Lab) -> None:
    inbound = lab.proxy("echo-v1")["inbound"]
    with lab.config("strict", MESH_STRICT):
        answer = plaintext_get(inbound, "/plain")
        assert not answer.startswith(b"HTTP/"), answer[:200]
        replies = await lab.send(f"{ECHO}/strict", 20)
        assert statuses(replies) == {200: 20}
        assert all(xfcc_uris(r) == [spiffe("default", "client")] for r in replies)
    # PERMISSIVE again once the policy is gone
    assert plaintext_get(inbound, "/plain").startswith(b"HTTP/1.1 200")


async def test_a_workload_policy_overrides_the_namespace_one(lab: Lab) -> None:
    namespace_strict = peer_auth("default", "default", "  mtls: {mode: STRICT}")
    echo_disabled = peer_auth(
        "echo-plain", "default", "  selector: {matchLabels: {app: echo}}\n  mtls: {mode: DISABLE}"
    )
    with lab.config("ns-strict", namespace_strict), lab.config("echo-plain", echo_disabled):
        # echo takes plain text only; its callers send plain text (automatic mTLS) once the
        # connections made in mTLS before the change have drained
        assert plaintext_get(lab.proxy("echo-v1")["inbound"]).startswith(b"HTTP/1.1 200")

        async def plain() -> bool:
            replies = await lab.send(f"{ECHO}/disabled", 12)
            assert statuses(replies) == {200: 12}
            return all(xfcc_uris(r) == [] for r in replies)

        await eventually(plain, 10, "every request to echo to arrive in plain text")
        # the namespace's STRICT still holds for the mirror workload
        assert not plaintext_get(lab.proxy("mirror")["inbound"]).startswith(b"HTTP/")


async def test_port_level_mtls_overrides_the_workload_mode(lab: Lab) -> None:
    spec = (
        "  selector: {matchLabels: {app: echo}}\n  mtls: {mode: STRICT}\n"
        "  portLevelMtls:\n    8080: {mode: PERMISSIVE}"
    )
    # A mode change applies to new connections (open ones keep the transport they were
    # made with, as in Istio): one request per connection, so every request is a new one.
    fresh = """apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: echo-fresh}
spec:
  host: echo
  trafficPolicy: {connectionPool: {http: {maxRequestsPerConnection: 1}}}
"""
    with (
        lab.config("echo-ports", peer_auth("echo-ports", "default", spec)),
        lab.config("echo-fresh", fresh),
    ):
        assert plaintext_get(lab.proxy("echo-v1")["inbound"]).startswith(b"HTTP/1.1 200")
        replies = await lab.send(f"{ECHO}/ports", 5)
        assert statuses(replies) == {200: 5}
        assert [xfcc_uris(r) for r in replies] == [[spiffe("default", "client")]] * 5


async def test_a_workload_without_sidecar_is_called_in_plain_text_even_under_strict(
    lab: Lab,
) -> None:
    """Automatic mTLS: the caller's sidecar sees that `legacy` has no sidecar and speaks
    plain text to it, so a mesh-wide STRICT (which binds servers with sidecars) does not
    cut it off; `plait analyze` warns that legacy's own calls would be refused."""
    assert all(p["workload"] != "legacy" for p in lab.mesh.status_proxies())
    with lab.config("strict", MESH_STRICT):
        replies = await lab.send("http://legacy:8080/old", 6)
        assert statuses(replies) == {200: 6}
        assert all(xfcc_uris(r) == [] for r in replies)  # no TLS on that hop
        assert all(r.replica == "legacy-0" for r in replies)
        analyze = plait("analyze", str(lab.mesh.root))
        assert "legacy" in analyze.stdout and "sidecar" in analyze.stdout, analyze.stdout


def echo_tls(tls: str) -> str:
    return f"""apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: echo-tls}}
spec:
  host: echo
  trafficPolicy:
    connectionPool: {{http: {{maxRequestsPerConnection: 1}}}}
    tls: {tls}
"""


async def test_destination_rule_tls_modes_istio_mutual_and_disable(lab: Lab) -> None:
    wrong_san = "{mode: ISTIO_MUTUAL, subjectAltNames: [spiffe://cluster.local/ns/default/sa/bank]}"
    with lab.config("echo-tls", echo_tls(wrong_san)):
        refused = await lab.send(f"{ECHO}/san", 4)
        assert statuses(refused) == {503: 4}  # echo's certificate does not name `bank`
    right_san = "{mode: ISTIO_MUTUAL, subjectAltNames: [spiffe://cluster.local/ns/default/sa/echo]}"
    with lab.config("echo-tls", echo_tls(right_san)):
        replies = await lab.send(f"{ECHO}/san", 4)
        assert statuses(replies) == {200: 4}
        assert all(xfcc_uris(r) == [spiffe("default", "client")] for r in replies)
    with lab.config("echo-tls", echo_tls("{mode: DISABLE}")):
        plain = await lab.send(f"{ECHO}/plain", 4)
        assert statuses(plain) == {200: 4}
        assert all(xfcc_uris(r) == [] for r in plain)  # PERMISSIVE echo took plain text
