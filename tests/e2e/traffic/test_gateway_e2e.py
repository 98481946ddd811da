"""The ingress gateway: host routing, gateway vs mesh binding, `ns/name` binding, HTTPS with
SNI-selected certificates verified against a test CA, httpsRedirect, and a server port
added while the mesh runs (a new gateway Envoy, with no request lost on the old port)."""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Mapping

import aiohttp
from labkit import Lab, eventually, replicas_of, statuses
from meshkit import envoy_pid

from testpki import ca_and_hosts

V1 = {"echo-v1-0", "echo-v1-1"}

HOSTS_VS = """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: gw-v1}
spec:
  hosts: [v1.lab.example]
  gateways: [lab-gateway]
  http: [{route: [{destination: {host: echo, subset: v1}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: gw-v2}
spec:
  hosts: [v2.lab.example]
  gateways: [lab-gateway]
  http: [{route: [{destination: {host: echo, subset: v2}}]}]
"""


async def test_virtual_services_bound_to_the_gateway_route_by_host(lab: Lab) -> None:
    with lab.config("gw-hosts", HOSTS_VS):
        v1 = await lab.send("/a", 20, via="gateway", headers={"Host": "v1.lab.example"})
        v2 = await lab.send("/b", 20, via="gateway", headers={"Host": "v2.lab.example:80"})
        other = await lab.send("/c", 2, via="gateway", headers={"Host": "other.lab.example"})
    assert set(replicas_of(v1)) == V1
    assert set(replicas_of(v2)) == {"echo-v2-0"}
    assert statuses(other) == {404: 2}  # no VirtualService binds that host


SPLIT_BINDINGS = """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo-edge}
spec:
  hosts: [echo, echo.lab.example]
  gateways: [lab-gateway]
  http: [{route: [{destination: {host: echo, subset: v2}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo-mesh}
spec:
  hosts: [echo]
  http: [{route: [{destination: {host: echo, subset: v1}}]}]
"""


async def test_gateway_and_mesh_bindings_do_not_leak_into_each_other(lab: Lab) -> None:
    with lab.config("gw-split", SPLIT_BINDINGS):
        sidecar = await lab.send("http://echo:8080/s", 30)
        edge = await lab.send("/g", 20, via="gateway", headers={"Host": "echo.lab.example"})
        edge_echo = await lab.send("/g", 20, via="gateway", headers={"Host": "echo"})
    assert set(replicas_of(sidecar)) == V1  # the mesh VS, not the gateway one (v2)
    assert set(replicas_of(edge)) == {"echo-v2-0"}
    assert set(replicas_of(edge_echo)) == {"echo-v2-0"}  # not the mesh VS (v1)


NS_BINDING = """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: team-edge, namespace: team}
spec:
  hosts: [team.lab.example]
  gateways: [default/lab-gateway]
  http: [{route: [{destination: {host: echo.default.svc.cluster.local, subset: v2}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: team-wrong, namespace: team}
spec:
  hosts: [wrong.lab.example]
  gateways: [lab-gateway]
  http: [{route: [{destination: {host: echo.default.svc.cluster.local, subset: v2}}]}]
"""


async def test_a_virtual_service_in_another_namespace_binds_with_ns_slash_name(lab: Lab) -> None:
    with lab.config("gw-ns", NS_BINDING):
        team = await lab.send("/t", 10, via="gateway", headers={"Host": "team.lab.example"})
        wrong = await lab.send("/t", 2, via="gateway", headers={"Host": "wrong.lab.example"})
    assert set(replicas_of(team)) == {"echo-v2-0"}
    assert statuses(wrong) == {404: 2}  # `lab-gateway` alone means team/lab-gateway


# --- HTTPS ------------------------------------------------------------------------------


TLS_GATEWAY = """apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: tls-gateway}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 443, name: https-a, protocol: HTTPS}
    hosts: [a.lab.example]
    tls: {mode: SIMPLE, serverCertificate: certs/a.lab.example.crt, privateKey: certs/a.lab.example.key}
  - port: {number: 443, name: https-b, protocol: HTTPS}
    hosts: [b.lab.example]
    tls: {mode: SIMPLE, serverCertificate: certs/b.lab.example.crt, privateKey: certs/b.lab.example.key}
  - port: {number: 80, name: http-redirect, protocol: HTTP}
    hosts: [secure.lab.example]
    tls: {httpsRedirect: true}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: tls-a}
spec:
  hosts: [a.lab.example]
  gateways: [tls-gateway]
  http: [{route: [{destination: {host: echo, subset: v1}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: tls-b}
spec:
  hosts: [b.lab.example]
  gateways: [default/tls-gateway]
  http: [{route: [{destination: {host: echo, subset: v2}}]}]
"""

STEADY = """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: steady}
spec:
  hosts: [steady.lab.example]
  gateways: [lab-gateway]
  http: [{route: [{destination: {host: echo}}]}]
"""


async def fetch(
    url: str,
    headers: Mapping[str, str],
    *,
    ssl_context: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
) -> tuple[int, Mapping[str, str], str]:
    """One request, redirects not followed; returns status, headers and body."""
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
        session.get(
            url,
            headers=dict(headers),
            allow_redirects=False,
            ssl=ssl_context if ssl_context is not None else True,
            server_hostname=server_hostname,
        ) as r,
    ):
        return r.status, dict(r.headers), await r.text()


async def served_certificate(port: int, sni: str, context: ssl.SSLContext) -> str:
    """The common name of the certificate the gateway presents for this SNI (verified)."""
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context, server_hostname=sni)
    try:
        peer = writer.get_extra_info("peercert")
        return str(dict(x[0] for x in peer["subject"])["commonName"])
    finally:
        writer.close()
        await writer.wait_closed()


async def test_https_servers_on_a_port_added_while_the_mesh_runs(lab: Lab) -> None:
    """Adding port 443 starts a new gateway Envoy; traffic on port 80 sees no failure.

    Then: each HTTPS server presents its own certificate by SNI (verified against the
    test CA, host name included) and routes to echo; the HTTP server with
    httpsRedirect answers 301 to https.
    """
    ca = ca_and_hosts(lab.mesh.root / "certs", ["a.lab.example", "b.lab.example"])
    assert lab.gateway_port(443) is None
    failures: list[str] = []
    sent = 0
    stop = asyncio.Event()

    async def steady_traffic() -> None:
        nonlocal sent
        while not stop.is_set():
            try:
                (reply,) = await lab.send(
                    "/steady", 1, via="gateway", headers={"Host": "steady.lab.example"}
                )
                if reply.status != 200:
                    failures.append(f"HTTP {reply.status}")
            except (aiohttp.ClientError, TimeoutError) as exc:
                failures.append(repr(exc))
            sent += 1
            await asyncio.sleep(0.01)

    lab.apply("steady", STEADY)
    first_gateway = "istio-ingressgateway.istio-system"
    assert envoy_pid(lab.mesh.root, first_gateway) is not None
    traffic = asyncio.create_task(steady_traffic())

    async def served(server_port: int) -> bool:
        return await asyncio.to_thread(lab.gateway_port, server_port) is not None

    try:
        # the lab's calls block: run them off the loop so that the traffic keeps flowing
        await asyncio.to_thread(lab.apply, "tls-gateway", TLS_GATEWAY)
        await eventually(lambda: served(443), 30, "a host port for server port 443")
        port = await asyncio.to_thread(lab.gateway_port, 443)
        gen = lab.mesh.cp_status()["controlPlane"]["generation"]
        await eventually(
            lambda: asyncio.to_thread(lab.mesh.all_synced, gen), 15, "the new gateway to ACK"
        )
        await eventually(
            lambda: envoy_pid(lab.mesh.root, first_gateway) is None, 20, "old gateway stopped"
        )
        stop.set()
        await traffic
        assert failures == [], f"{len(failures)} of {sent} requests failed: {failures[:5]}"
        assert sent > 20

        context = ssl.create_default_context(cafile=str(ca))
        for host, subset in (("a.lab.example", V1), ("b.lab.example", {"echo-v2-0"})):
            seen = set()
            for _ in range(6):
                status, _, body = await fetch(
                    f"https://127.0.0.1:{port}/tls",
                    {"Host": host},
                    ssl_context=context,
                    server_hostname=host,
                )
                assert status == 200, body
                seen.add(json.loads(body)["replica"])
            assert seen <= subset and seen, (host, seen)
            assert await served_certificate(port, host, context) == host

        status, headers, _ = await fetch(
            f"{lab.mesh.gateway}/some/path?q=1", {"Host": "secure.lab.example"}
        )
        assert status == 301
        assert headers["Location"] == "https://secure.lab.example/some/path?q=1"
    finally:
        stop.set()
        await traffic
        await asyncio.to_thread(lab.remove, "tls-gateway")
        await asyncio.to_thread(lab.remove, "steady")
