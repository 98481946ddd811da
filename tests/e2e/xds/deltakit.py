"""The xDS e2e harness: plait's `AdsServer` over a `StaticConfigSource` (the test
publishes resources through it, even ones translation would never make), real Envoys
from the agent's bootstrap (delta ADS, the default, or the State of the World), and HTTP
backends named by their answer. `restart_server()` stops the ADS server and starts a new one on the same port:
Envoy reconnects and tells it what it holds (`initial_resource_versions`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ads_testkit import cluster, endpoints, listener, routes
from agent_e2e import eventually, free_port, http_get, make_proxy
from aiohttp import web

from plait.agent import admin
from plait.agent.bootstrap import BootstrapOptions, XdsProtocol
from plait.agent.supervisor import EnvoySupervisor, SupervisorOptions
from plait.translate.resource import ProxyConfig, Resource
from plait.xds import AdsServer, StaticConfigSource

LISTENER_NAME, ROUTE_NAME = "outbound", "outbound-routes"


def mesh_config(
    clusters: Mapping[str, int],
    route_to: str,
    listen: int,
    *,
    timeouts: Mapping[str, int] | None = None,
    extra: Iterable[Resource] = (),
) -> ProxyConfig:
    """Clusters by backend port, one listener on `listen` routing all to `route_to`."""
    res = [cluster(n, (timeouts or {}).get(n, 1000)) for n in clusters]
    res += [endpoints(n, [port]) for n, port in clusters.items()]
    res += [listener(LISTENER_NAME, listen, ROUTE_NAME), routes(ROUTE_NAME, route_to), *extra]
    return ProxyConfig.of(res)


class AdsHarness:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.source = StaticConfigSource()
        self.server: AdsServer | None = None
        self.port = 0
        self.envoys: list[EnvoySupervisor] = []
        self._runners: list[web.AppRunner] = []

    async def start_server(self) -> AdsServer:
        server = AdsServer(self.source)
        self.port = await server.start("127.0.0.1", self.port)
        self.server = server
        return server

    async def stop_server(self) -> None:
        server, self.server = self.server, None
        if server is not None:
            await server.stop(0)

    async def restart_server(self) -> AdsServer:
        await self.stop_server()
        return await self.start_server()

    def publish(self, config: ProxyConfig) -> int:
        return self.source.set(lambda proxy: config)

    async def synced(self, generation: int, timeout: float = 15.0) -> None:
        assert self.server is not None
        ok = await self.server.wait_synced(generation, timeout, min_proxies=len(self.envoys))
        assert ok, f"generation {generation} not ACKed: {self.server.statuses()}"

    async def envoy(self, protocol: XdsProtocol = XdsProtocol.DELTA) -> EnvoySupervisor:
        options = BootstrapOptions(
            proxy=make_proxy(f"web-{len(self.envoys)}"),
            admin_port=0,
            xds_host="127.0.0.1",
            xds_port=self.port,
            xds_protocol=protocol,
        )
        sup = EnvoySupervisor(
            options, self.workdir, options=SupervisorOptions(log_level="info", drain_time_s=1)
        )
        self.envoys.append(sup)
        await sup.start()
        return sup

    async def start(
        self,
        config: ProxyConfig,
        listen: int,
        answer: str,
        protocol: XdsProtocol = XdsProtocol.DELTA,
    ) -> EnvoySupervisor:
        """Server, config, one Envoy (speaking `protocol`); returns once its listener on
        `listen` answers `answer` and it has ACKed everything."""
        await self.start_server()
        self.publish(config)
        envoy = await self.envoy(protocol)
        await self.answers(listen, answer)
        await self.synced(self.source.generation)
        return envoy

    async def backend(self, name: str) -> int:
        """An HTTP server on 127.0.0.1 that answers every request with `name`."""

        async def answer(_request: web.Request) -> web.Response:
            return web.Response(text=name)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", answer)
        runner = web.AppRunner(app)
        await runner.setup()
        self._runners.append(runner)
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        return port

    async def answers(self, port: int, expected: str, timeout: float = 10.0) -> None:
        async def check() -> bool:
            status, body = await http_get(f"http://127.0.0.1:{port}/")
            return status == 200 and body == expected

        await eventually(check, timeout, f"127.0.0.1:{port} answers {expected!r}")

    async def close(self) -> None:
        for sup in self.envoys:
            await sup.stop()
        await self.stop_server()
        for runner in self._runners:
            await runner.cleanup()


async def dynamic_clusters(sup: EnvoySupervisor) -> dict[str, dict[str, Any]]:
    """Envoy's active dynamic clusters by name (`version_info` and the cluster)."""
    assert sup.admin_url is not None
    dump = await admin.config_dump(sup.admin_url)
    for section in dump["configs"]:
        if section["@type"].endswith("ClustersConfigDump"):
            return {c["cluster"]["name"]: c for c in section.get("dynamic_active_clusters", [])}
    return {}
