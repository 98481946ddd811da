"""An endpoint-only change end to end through `MeshState` and the ADS server: the
snapshot comes from `with_instances`, the Translator takes its fast path, and only the
streams subscribed to an affected endpoint set get anything: one EDS response each."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from ads_testkit import AdsClient, counted, node_for, proxy

from plait.api import load_text
from plait.controlplane.state import MeshState
from plait.model.labels import Labels
from plait.model.proxy import Proxy
from plait.model.registry import PortMap, WorkloadInstance
from plait.model.snapshot import MeshSnapshot, build_snapshot, with_instances
from plait.translate.typeurls import CLUSTER, ENDPOINT, LISTENER, ROUTE
from plait.xds import AdsServer

MESH = """apiVersion: v1
kind: Service
metadata: {name: reviews}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: ratings}
spec:
  selector: {app: ratings}
  ports: [{name: http, port: 9080}]
"""
CONFIG = load_text(MESH, "mesh.yaml").resources


def pod(name: str, port: int, app: str) -> WorkloadInstance:
    return WorkloadInstance(
        name, name.rsplit("-", 1)[0], "default", Labels.of({"app": app}), app,
        "127.0.0.1", PortMap.all_to(port),
    )  # fmt: skip


BEFORE = (pod("reviews-v1-0", 20001, "reviews"), pod("ratings-v1-0", 20011, "ratings"))
AFTER = (*BEFORE, pod("ratings-v1-1", 20012, "ratings"))
FRONTEND, CHECKOUT = proxy("frontend-0", 21001), proxy("checkout-0", 21011)


@pytest.fixture
async def served() -> AsyncIterator[tuple[MeshState, AdsServer]]:
    state = MeshState(build_snapshot(CONFIG, BEFORE, 1))
    server = AdsServer(state)
    await server.start("127.0.0.1", 0)
    yield state, server
    await server.stop(0)


async def synced(server: AdsServer, state: MeshState, who: Proxy, host: str) -> AdsClient:
    """A client that has every cluster, listener and route but subscribes to the
    endpoint sets of `host` only (as an Envoy scoped to that host would)."""
    assert server.port is not None
    client = AdsClient.open(server.port, node_for(who))
    config = state.config_for(who)
    await client.request(CLUSTER)
    await client.ack(*(await client.recv_types(CLUSTER)))
    await client.request(ENDPOINT, sorted(n for n in config.resources(ENDPOINT) if host in n))
    await client.ack(*(await client.recv_types(ENDPOINT)))
    await client.request(LISTENER)
    await client.ack(*(await client.recv_types(LISTENER)))
    await client.request(ROUTE, sorted(config.resources(ROUTE)))
    await client.ack(*(await client.recv_types(ROUTE)))
    return client


def endpoint_change(snapshot: MeshSnapshot) -> MeshSnapshot:
    changed, hosts = with_instances(snapshot, CONFIG, BEFORE, AFTER, snapshot.version + 1)
    assert hosts == {"ratings.default.svc.cluster.local"}
    return changed


async def test_only_subscribers_of_the_affected_endpoint_sets_get_a_push(
    served: tuple[MeshState, AdsServer],
) -> None:
    state, server = served
    reviews_only = await synced(server, state, FRONTEND, "reviews")
    ratings_only = await synced(server, state, CHECKOUT, "ratings")
    try:
        await counted(server, 8)  # the 4 responses each client read
        pushes = dict(server.counters.pushes)
        await state.publish(endpoint_change(state.snapshot))

        [eds] = await ratings_only.recv_types(ENDPOINT)
        assert eds.names == ["outbound|9080||ratings.default.svc.cluster.local"]
        assert len(eds.msg.resources) == 1  # the changed set, not every subscribed one
        await ratings_only.ack(eds)
        await ratings_only.expect_silence(0.3)
        await reviews_only.expect_silence(0.3)
        sent = {t: n - pushes.get(t, 0) for t, n in server.counters.pushes.items()}
        assert {t: n for t, n in sent.items() if n} == {"eds": 1}
        assert server.counters.pushes_by_reason["eds", "endpoint"] == 1
    finally:
        await reviews_only.close()
        await ratings_only.close()


async def test_the_translator_rebuilds_nothing_but_the_affected_endpoint_sets(
    served: tuple[MeshState, AdsServer],
) -> None:
    state, _server = served
    for who in (FRONTEND, CHECKOUT):
        state.config_for(who)  # as the streams would: the proxies the next one serves
    old = {who.id: state.config_for(who) for who in (FRONTEND, CHECKOUT)}
    await state.publish(endpoint_change(state.snapshot))
    built = state.built
    assert built.endpoint_hosts == {"ratings.default.svc.cluster.local"}
    assert (built.hosts, built.own, built.tables, built.configs) == (1, 0, 0, 0)
    assert built.eds_swaps == 2
    for who in (FRONTEND, CHECKOUT):
        new = state.config_for(who)
        for type_url in (CLUSTER, LISTENER, ROUTE):
            assert new.resources(type_url) is old[who.id].resources(type_url)
