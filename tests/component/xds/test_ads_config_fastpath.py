"""A VirtualService edit end to end through `MeshState` and the ADS server in a scoped mesh:
the snapshot comes from `with_config`, the Translator takes its config fast path, and only
the proxy whose Sidecar imports the edited host gets anything: one RDS response."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from ads_testkit import AdsClient, counted, node_for, proxy

from configfiles import config
from plait.controlplane.state import MeshState
from plait.model.proxy import Proxy
from plait.model.snapshot import build_snapshot
from plait.model.withconfig import with_config
from plait.translate import names
from plait.translate.typeurls import CLUSTER, ENDPOINT, LISTENER, ROUTE
from plait.xds import AdsServer


def service(name: str) -> str:
    return f"""apiVersion: v1
kind: Service
metadata: {{name: {name}}}
spec:
  selector: {{app: {name}}}
  ports: [{{name: http, port: 8080}}]
"""


def vs(host: str, timeout: str) -> str:
    return f"""apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: {host}}}
spec:
  hosts: [{host}]
  http: [{{timeout: {timeout}, route: [{{destination: {{host: {host}}}}}]}}]
"""


def sidecar(app: str, host: str) -> str:
    return f"""apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {{name: {app}}}
spec:
  workloadSelector: {{labels: {{app: {app}}}}}
  egress: [{{hosts: [./{host}.default.svc.cluster.local]}}]
"""


FILES = {
    **{f"svc-{n}": service(n) for n in ("reviews", "ratings", "frontend", "checkout")},
    "vs-reviews": vs("reviews", "1s"),
    "vs-ratings": vs("ratings", "1s"),
    "sidecar-frontend": sidecar("frontend", "reviews"),
    "sidecar-checkout": sidecar("checkout", "ratings"),
}
EDITED = FILES | {"vs-reviews": vs("reviews", "2s")}


FRONTEND, CHECKOUT = proxy("frontend-0", 21001), proxy("checkout-0", 21011)


@pytest.fixture
async def served() -> AsyncIterator[tuple[MeshState, AdsServer]]:
    state = MeshState(build_snapshot(config(FILES), (), 1))
    server = AdsServer(state)
    await server.start("127.0.0.1", 0)
    yield state, server
    await server.stop(0)


async def synced(server: AdsServer, state: MeshState, who: Proxy) -> AdsClient:
    """A client that has ACKed everything its config holds."""
    assert server.port is not None
    client = AdsClient.open(server.port, node_for(who))
    held = state.config_for(who)
    for type_url in (CLUSTER, ENDPOINT, LISTENER, ROUTE):
        if type_url in (ENDPOINT, ROUTE):  # named subscriptions, as Envoy makes them
            await client.request(type_url, sorted(held.resources(type_url)))
        else:
            await client.request(type_url)
        await client.ack(*(await client.recv_types(type_url)))
    return client


async def test_only_the_dependent_gets_the_edit(served: tuple[MeshState, AdsServer]) -> None:
    state, server = served
    frontend = await synced(server, state, FRONTEND)
    checkout = await synced(server, state, CHECKOUT)
    try:
        await counted(server, 8)  # the 4 responses each client read
        pushes = dict(server.counters.pushes)
        edited = with_config(state.snapshot, config(FILES), config(EDITED), 2)
        assert edited is not None
        await state.publish(edited)
        assert state.built.config_affected == 1  # frontend's, no other config looked at

        [rds] = await frontend.recv_types(ROUTE)
        assert names.OUTBOUND_ROUTE in rds.names
        await frontend.ack(rds)
        await frontend.expect_silence(0.3)
        await checkout.expect_silence(0.3)
        sent = {t: n - pushes.get(t, 0) for t, n in server.counters.pushes.items()}
        assert {t: n for t, n in sent.items() if n} == {"rds": 1}
    finally:
        await frontend.close()
        await checkout.close()
