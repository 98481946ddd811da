"""Initial sync, ACK/NACK, stale nonces, and what each kind of change pushes."""

from __future__ import annotations

from ads_testkit import ClientFactory, eventually, mesh, sidecar

from plait.translate.typeurls import CLUSTER, ENDPOINT, LISTENER, PUSH_ORDER, ROUTE
from plait.xds import AdsServer, StaticConfigSource, SyncState

PROXY = sidecar()
BASE = mesh({"a": [8001], "b": [8002]}, route_to="a")


def sync_of(server: AdsServer) -> dict[str, str]:
    [status] = server.statuses()
    return status.sync


async def test_initial_sync_is_in_push_order_and_acks_make_synced(
    server: AdsServer, source: StaticConfigSource, connect: ClientFactory
) -> None:
    gen = source.set({PROXY.id: BASE})
    client = connect(PROXY)
    await client.subscribe_all(BASE)

    got = await client.recv_types(*PUSH_ORDER)

    assert got[0].names == ["a", "b"] and got[1].names == ["a", "b"]
    assert got[2].names == ["outbound"] and got[3].names == ["outbound-routes"]
    for r in got:
        assert r.msg.version_info == BASE.version(r.type_url)
        assert r.msg.control_plane.identifier == "plait"
    assert len({r.msg.nonce for r in got}) == 4
    assert sync_of(server) == dict.fromkeys(("cds", "eds", "lds", "rds"), "STALE")

    for r in got:
        await client.ack(r)
    assert await server.wait_synced(gen, timeout=5)
    [status] = server.statuses()
    assert status.connected and status.proxy == PROXY
    assert status.sync == dict.fromkeys(("cds", "eds", "lds", "rds"), "SYNCED")
    assert status.nack is None and status.last_ack is not None
    assert status.types["cds"].acked_version == BASE.version(CLUSTER)
    assert server.counters.pushes == {"cds": 1, "eds": 1, "lds": 1, "rds": 1}


async def test_types_not_yet_requested_are_not_sent(
    server: AdsServer, source: StaticConfigSource, connect: ClientFactory
) -> None:
    source.set({PROXY.id: BASE})
    client = connect(PROXY)
    await client.request(CLUSTER)
    [cds] = await client.recv_types(CLUSTER)
    await client.ack(cds)
    await client.expect_silence()
    assert sync_of(server) == {
        "cds": "SYNCED",
        "eds": "NOT SENT",
        "lds": "NOT SENT",
        "rds": "NOT SENT",
    }


async def test_nack_is_recorded_and_the_same_version_is_not_resent(
    server: AdsServer, source: StaticConfigSource, connect: ClientFactory
) -> None:
    source.set({PROXY.id: BASE})
    client = connect(PROXY)
    await client.initial_sync(BASE)
    bad = mesh({"a": [8001], "b": [8002]}, route_to="a", timeouts={"a": 0})
    gen = source.set({PROXY.id: bad})
    cds, eds = await client.recv_types(CLUSTER, ENDPOINT)

    await client.nack(cds, "cluster a: connect_timeout must be positive")
    await client.ack(eds)
    await eventually(lambda: sync_of(server)["cds"] == "NACK")
    [status] = server.statuses()
    assert status.nack == "cluster a: connect_timeout must be positive"
    assert status.types["cds"].acked_version == BASE.version(CLUSTER)  # the kept version
    assert server.counters.nacks == {"cds": 1}

    source.set({PROXY.id: bad})  # a new generation with the same config: still no resend
    await client.expect_silence()
    assert not await server.wait_synced(gen, timeout=0.2)

    fixed = mesh({"a": [8001], "b": [8002]}, route_to="a", timeouts={"a": 250})
    gen = source.set({PROXY.id: fixed})
    cds, _ = await client.recv_types(CLUSTER, ENDPOINT)
    assert cds.msg.version_info == fixed.version(CLUSTER)
    assert sync_of(server)["cds"] == "NACK"  # until a newer version is ACKed
    await client.ack(cds)
    await eventually(lambda: sync_of(server)["cds"] == "SYNCED")
    assert server.statuses()[0].nack is None


async def test_stale_nonce_is_neither_ack_nor_nack(
    server: AdsServer, source: StaticConfigSource, connect: ClientFactory
) -> None:
    source.set({PROXY.id: BASE})
    client = connect(PROXY)
    first_cds, *_ = await client.initial_sync(BASE)
    # the ACKs read before the change: one read after it would be stale too
    assert await server.wait_synced(source.generation, 5, min_proxies=1)
    changed = mesh({"a": [8001], "b": [8002]}, route_to="a", timeouts={"b": 300})
    source.set({PROXY.id: changed})
    cds, eds = await client.recv_types(CLUSTER, ENDPOINT)

    await client.request(CLUSTER, nonce=first_cds.msg.nonce, error="late complaint")
    await eventually(lambda: server.counters.stale_requests == 1)
    assert sync_of(server)["cds"] == "STALE"
    assert server.counters.nacks == {}
    await client.expect_silence(0.2)

    await client.ack(cds)
    await client.ack(eds)
    await eventually(lambda: sync_of(server)["cds"] == "SYNCED")


async def test_stale_request_still_updates_the_subscription(
    server: AdsServer, source: StaticConfigSource, connect: ClientFactory
) -> None:
    cfg = mesh({"a": [8001], "b": [8002], "c": [8003]}, route_to="a")
    source.set({PROXY.id: cfg})
    client = connect(PROXY)
    await client.request(CLUSTER)
    await client.request(ENDPOINT, ["a"])
    cds, eds = await client.recv_types(CLUSTER, ENDPOINT)
    assert eds.names == ["a"]
    await client.ack(cds)
    await client.ack(eds)
    source.set({PROXY.id: mesh({"a": [8001, 8011], "b": [8002], "c": [8003]}, route_to="a")})
    [eds2] = await client.recv_types(ENDPOINT)

    await client.request(ENDPOINT, ["a", "b", "c"], nonce=eds.msg.nonce)  # stale nonce
    [eds3] = await client.recv_types(ENDPOINT)
    assert eds3.names == ["b", "c"]
    assert eds2.msg.nonce != eds3.msg.nonce


async def test_endpoint_only_change_pushes_eds_only(
    server: AdsServer, source: StaticConfigSource, connect: ClientFactory
) -> None:
    source.set({PROXY.id: BASE})
    client = connect(PROXY)
    await client.initial_sync(BASE)

    moved = mesh({"a": [8001, 8011], "b": [8002]}, route_to="a")
    gen = source.set({PROXY.id: moved})
    [eds] = await client.recv_types(ENDPOINT)
    assert eds.names == ["a"]  # only the changed assignment
    assert eds.msg.version_info == moved.version(ENDPOINT)
    await client.ack(eds)
    await client.expect_silence(0.2)
    assert await server.wait_synced(gen, timeout=5)


async def test_cluster_change_resends_its_endpoints(
    server: AdsServer, source: StaticConfigSource, connect: ClientFactory
) -> None:
    source.set({PROXY.id: BASE})
    client = connect(PROXY)
    await client.initial_sync(BASE)

    changed = mesh({"a": [8001], "b": [8002]}, route_to="a", timeouts={"b": 300})
    source.set({PROXY.id: changed})
    cds, eds = await client.recv_types(CLUSTER, ENDPOINT)
    assert cds.names == ["a", "b"]
    assert eds.names == ["b"]  # endpoints unchanged, re-sent so the new cluster warms
    await client.expect_silence(0.2)


async def test_generations_arriving_together_are_coalesced(
    server: AdsServer, source: StaticConfigSource, connect: ClientFactory
) -> None:
    source.set({PROXY.id: BASE})
    client = connect(PROXY)
    await client.initial_sync(BASE)

    for ms in (100, 200, 300):
        last = mesh({"a": [8001], "b": [8002]}, route_to="a", timeouts={"a": ms})
        source.set({PROXY.id: last})
    cds, _ = await client.recv_types(CLUSTER, ENDPOINT)
    assert cds.msg.version_info == last.version(CLUSTER)
    await client.expect_silence(0.3)


async def test_unserved_types_are_ignored(
    server: AdsServer, source: StaticConfigSource, connect: ClientFactory
) -> None:
    source.set({PROXY.id: BASE})
    client = connect(PROXY)
    await client.request(
        "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret", ["default"]
    )
    await client.expect_silence(0.2)
    await client.request(CLUSTER)
    await client.recv_types(CLUSTER)


async def test_lds_and_rds_changes(
    server: AdsServer, source: StaticConfigSource, connect: ClientFactory
) -> None:
    source.set({PROXY.id: BASE})
    client = connect(PROXY)
    await client.initial_sync(BASE)

    rerouted = mesh({"a": [8001], "b": [8002]}, route_to="b", stat_prefix="out2")
    gen = source.set({PROXY.id: rerouted})
    lds, rds = await client.recv_types(LISTENER, ROUTE)
    await client.ack(lds)
    await client.ack(rds)
    assert await server.wait_synced(gen, timeout=5)
    assert all(t.state is SyncState.SYNCED for t in server.statuses()[0].types.values())
