"""Traffic leaving the mesh: the outbound traffic policy (ALLOW_ANY / REGISTRY_ONLY, set in
the mesh ConfigMap and changed while the mesh runs) and ServiceEntry hosts (DNS, STATIC,
NONE) that reach a server outside the mesh, with VirtualService policies applied to them.

The "external" server is an aiohttp app started by the test on a free loopback port: no
sidecar, not in the registry, exactly like a host on the internet.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from labkit import Lab, Reply, statuses

MESH_CONFIG = """apiVersion: v1
kind: ConfigMap
metadata: {{name: istio, namespace: istio-system}}
data:
  mesh: |
    accessLogFile: /dev/stdout
    outboundTrafficPolicy:
      mode: {mode}
"""
REGISTRY_ONLY = MESH_CONFIG.format(mode="REGISTRY_ONLY")


@dataclass
class External:
    """A server outside the mesh; `hits` counts the requests it received, per path."""

    port: int = 0
    hits: dict[str, int] = field(default_factory=dict)
    last_headers: dict[str, str] = field(default_factory=dict)

    async def handle(self, request: web.Request) -> web.Response:
        self.hits[request.path] = self.hits.get(request.path, 0) + 1
        self.last_headers = dict(request.headers)
        delay = int(request.headers.get("x-echo-delay-ms", "0"))
        if delay:
            await asyncio.sleep(delay / 1000)
        return web.json_response({"server": "external", "path": request.path})


@pytest.fixture
async def external() -> AsyncIterator[External]:
    server = External()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", server.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server.port = runner.addresses[0][1]
    try:
        yield server
    finally:
        await runner.cleanup()


def dns_entry(port: int) -> str:
    """`external.test`, resolved by Envoy through its endpoint `localhost`."""
    return f"""apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: external-dns}}
spec:
  hosts: [external.test]
  location: MESH_EXTERNAL
  resolution: DNS
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  endpoints: [{{address: localhost, ports: {{http: {port}}}}}]
"""


def static_entry(port: int) -> str:
    return f"""apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: external-static}}
spec:
  hosts: [static.test]
  resolution: STATIC
  ports: [{{number: 8000, name: http, protocol: HTTP, targetPort: {port}}}]
  endpoints: [{{address: 127.0.0.1}}]
"""


def none_entry(port: int) -> str:
    """A resolution-NONE entry: the host is registered, the caller's address is used."""
    return f"""apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: external-none}}
spec:
  hosts: [localhost]
  resolution: NONE
  ports: [{{number: {port}, name: http, protocol: HTTP}}]
"""


def ok_from_external(replies: list[Reply]) -> bool:
    return all(
        r.status == 200 and isinstance(r.body, dict) and r.body.get("server") == "external"
        for r in replies
    )


async def test_allow_any_passes_unregistered_hosts_through(lab: Lab, external: External) -> None:
    by_ip = await lab.send(f"http://127.0.0.1:{external.port}/by-ip", 5)
    by_name = await lab.send(f"http://localhost:{external.port}/by-name", 5)
    assert ok_from_external(by_ip), [(r.status, r.body) for r in by_ip]
    assert ok_from_external(by_name), [(r.status, r.body) for r in by_name]
    assert external.hits == {"/by-ip": 5, "/by-name": 5}


async def test_registry_only_refuses_unregistered_hosts_and_switches_back_at_runtime(
    lab: Lab, external: External
) -> None:
    unregistered = f"http://127.0.0.1:{external.port}/blocked"
    with lab.config("mesh-config", REGISTRY_ONLY):
        refused = await lab.send(unregistered, 5)
        assert statuses(refused) == {502: 5}  # istiod's block_all answer
        assert "/blocked" not in external.hits
        echo = await lab.send("http://echo:8080/still-fine", 5)
        assert statuses(echo) == {200: 5}
        with lab.config("external-dns", dns_entry(external.port)):
            registered = await lab.send("http://external.test/registered", 5)
            assert ok_from_external(registered), [(r.status, r.body) for r in registered]
    # the ConfigMap is gone: back to ALLOW_ANY without a restart
    assert statuses(await lab.send(unregistered, 3)) == {200: 3}
    assert external.hits["/blocked"] == 3


async def test_dns_static_and_none_entries_reach_the_external_server(
    lab: Lab, external: External
) -> None:
    port = external.port
    with (
        lab.config("mesh-config", REGISTRY_ONLY),  # entries are registered: not refused
        lab.config("external-dns", dns_entry(port)),
        lab.config("external-static", static_entry(port)),
        lab.config("external-none", none_entry(port)),
    ):
        dns = await lab.send("http://external.test/dns", 4)
        static = await lab.send("http://static.test:8000/static", 4)
        none = await lab.send(f"http://localhost:{port}/none", 4)
        for replies in (dns, static, none):
            assert ok_from_external(replies), [(r.status, r.body) for r in replies]
        # an unregistered port of a registered host is still refused
        assert statuses(await lab.send(f"http://localhost:{port + 1}/other-port", 2)) == {502: 2}
    assert external.hits == {"/dns": 4, "/static": 4, "/none": 4}
    assert external.last_headers["Host"] == f"localhost:{port}"


async def test_virtual_service_policies_apply_to_a_service_entry_host(
    lab: Lab, external: External
) -> None:
    vs = """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: external}
spec:
  hosts: [external.test]
  http:
  - match: [{uri: {prefix: /aborted}}]
    fault: {abort: {httpStatus: 418, percentage: {value: 100}}}
    route: [{destination: {host: external.test}}]
  - headers: {request: {set: {x-from-policy: applied}}}
    route: [{destination: {host: external.test}}]
"""
    with lab.config("external-dns", dns_entry(external.port)):
        before = await lab.send("http://external.test/aborted", 2)
        assert ok_from_external(before)
        assert "x-from-policy" not in {k.lower() for k in external.last_headers}
        with lab.config("external-vs", vs):
            aborted = await lab.send("http://external.test/aborted", 4)
            assert statuses(aborted) == {418: 4}
            assert external.hits["/aborted"] == 2  # the fault answered; nothing reached it
            routed = await lab.send("http://external.test/routed", 3)
            assert ok_from_external(routed)
            assert external.last_headers.get("x-from-policy") == "applied"


async def test_an_invalid_mode_is_reported_and_the_last_good_policy_stays(
    lab: Lab, external: External
) -> None:
    unregistered = f"http://127.0.0.1:{external.port}/kept"
    with lab.config("mesh-config", REGISTRY_ONLY):
        lab.apply("mesh-config", MESH_CONFIG.format(mode="REGISTRY_ONLYY"))
        errors = [e for e in lab.errors() if e["file"].endswith("mesh-config.yaml")]
        assert [(e["document"], e["path"]) for e in errors] == [
            (0, "data.mesh.outboundTrafficPolicy.mode")
        ], errors
        assert "REGISTRY_ONLY" in errors[0]["message"]
        assert statuses(await lab.send(unregistered, 3)) == {502: 3}
    assert not [e for e in lab.errors() if e["file"].endswith("mesh-config.yaml")]
