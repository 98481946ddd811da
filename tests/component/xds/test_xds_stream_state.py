"""The per-stream state machine without gRPC: what is sent after each request."""

from __future__ import annotations

from datetime import UTC, datetime

from ads_testkit import cluster, endpoints, mesh
from envoy.service.discovery.v3 import discovery_pb2

from plait.translate.resource import ProxyConfig
from plait.translate.typeurls import CLUSTER, ENDPOINT, LISTENER, ROUTE
from plait.xds.session import to_request
from plait.xds.stream import StreamState
from plait.xds.typestate import PlannedResponse, Request, RequestKind, SyncState, changed_names

NOW = datetime(2025, 1, 1, tzinfo=UTC)


def ack(state: StreamState, p: PlannedResponse, names: tuple[str, ...] = ()) -> RequestKind:
    return state.on_request(Request(p.type_url, p.version, p.nonce, names), NOW)


def test_nack_keeps_last_good_and_never_loops() -> None:
    state = StreamState()
    good = ProxyConfig.of([cluster("a")])
    state.on_request(Request(CLUSTER), NOW)
    [first] = state.plan(good)
    ack(state, first)
    bad = ProxyConfig.of([cluster("a", 0)])
    [rejected] = state.plan(bad)
    kind = state.on_request(Request(CLUSTER, first.version, rejected.nonce, error="bad"), NOW)

    assert kind is RequestKind.NACK
    assert state.plan(bad) == []
    ts = state.types[CLUSTER]
    assert ts.sync_state(bad) is SyncState.NACK and ts.acked_version == first.version
    assert ts.nack is not None and ts.nack.version == rejected.version
    assert state.plan(good)[0].version == good.version(CLUSTER)  # a revert is a new send


def test_unsubscribed_then_resubscribed_names_are_sent_again() -> None:
    state = StreamState()
    cfg = ProxyConfig.of([endpoints("a", [1]), endpoints("b", [2])])
    state.on_request(Request(ENDPOINT, resource_names=("a", "b")), NOW)
    [p] = state.plan(cfg)
    ack(state, p, ("a", "b"))
    state.on_request(Request(ENDPOINT, p.version, p.nonce, ("a",)), NOW)
    assert state.plan(cfg) == []
    state.on_request(Request(ENDPOINT, p.version, p.nonce, ("a", "b")), NOW)
    [again] = state.plan(cfg)
    assert [r.name for r in again.resources] == ["b"]


def test_subscribed_name_that_appears_later_is_sent() -> None:
    state = StreamState()
    state.on_request(Request(ENDPOINT, resource_names=("a",)), NOW)
    assert state.plan(ProxyConfig.of([])) == []
    [p] = state.plan(ProxyConfig.of([endpoints("a", [1])]))
    assert [r.name for r in p.resources] == ["a"]


def test_removal_without_listeners_is_immediate() -> None:
    state = StreamState()
    state.on_request(Request(CLUSTER), NOW)
    [p] = state.plan(ProxyConfig.of([cluster("a"), cluster("b")]))
    ack(state, p)
    [p2] = state.plan(ProxyConfig.of([cluster("a")]))
    assert [r.name for r in p2.resources] == ["a"]


def test_removal_keeps_clusters_until_routes_are_acked() -> None:
    state = StreamState()
    before = mesh({"a": [1], "b": [2]}, route_to="b")
    for t, names in (
        (CLUSTER, ()),
        (ENDPOINT, ("a", "b")),
        (LISTENER, ()),
        (ROUTE, ("outbound-routes",)),
    ):
        state.on_request(Request(t, resource_names=names), NOW)
    for p in state.plan(before):
        ack(
            state,
            p,
            ("a", "b")
            if p.type_url == ENDPOINT
            else ("outbound-routes",)
            if p.type_url == ROUTE
            else (),
        )
    after = mesh({"a": [1]}, route_to="a")
    cds, rds = state.plan(after)
    assert [r.name for r in cds.resources] == ["a", "b"] and rds.type_url == ROUTE
    ack(state, cds)
    assert state.plan(after) == []
    ack(state, rds, ("outbound-routes",))
    [final] = state.plan(after)
    assert [r.name for r in final.resources] == ["a"]
    ack(state, final)
    assert state.settled(after)


def test_a_repeated_nonce_after_ack_only_updates_names() -> None:
    state = StreamState()
    cfg = ProxyConfig.of([endpoints("a", [1])])
    state.on_request(Request(ENDPOINT, resource_names=("a",)), NOW)
    [p] = state.plan(cfg)
    assert ack(state, p, ("a",)) is RequestKind.ACK
    assert ack(state, p, ("a",)) is RequestKind.SUBSCRIBE


def test_owed_follows_every_change_from_the_last_clean_point() -> None:
    """Across shared configs (as a snapshot's streams hold them), changed, added and
    forgotten names are owed exactly as a walk over every subscribed name finds them."""
    state = StreamState()
    eds = state.types[ENDPOINT]
    names = ("a", "b", "c", "d")
    state.on_request(Request(ENDPOINT, resource_names=names), NOW)
    configs = [
        ProxyConfig.of([endpoints("a", [1]), endpoints("b", [2]), endpoints("c", [3])]),
        ProxyConfig.of([endpoints("a", [1]), endpoints("b", [9]), endpoints("c", [3])]),
        ProxyConfig.of([endpoints("a", [1]), endpoints("b", [9]), endpoints("c", [3])]),
        ProxyConfig.of([endpoints(n, [4]) for n in names]),
    ]
    sent_names = []
    for i, cfg in enumerate(configs):
        if i == 2:
            eds.forget("a")  # a cluster changed: its endpoints must go again
        want = sorted(
            n
            for n, r in cfg.resources(ENDPOINT).items()
            if n not in eds.named or eds.named[n].digest != r.digest
        )
        planned = state.plan(cfg)
        got = [r.name for p in planned for r in p.resources]
        assert got == want, i
        sent_names.append(got)
        for p in planned:
            ack(state, p, names)
        assert state.plan(cfg) == [] and eds.settled(cfg)
    assert sent_names == [["a", "b", "c"], ["b"], ["a"], ["a", "b", "c", "d"]]


def test_changed_names_of_large_shared_mappings_are_computed_once() -> None:
    old = {f"c{i}": endpoints(f"c{i}", [i]) for i in range(100)}
    new = {**old, "c7": endpoints("c7", [1000]), "c100": endpoints("c100", [1])}
    same_bytes = {**new, "c8": endpoints("c8", [8])}  # an equal resource, rebuilt
    first = changed_names(old, new)
    assert first == {"c7", "c100"}
    assert changed_names(old, new) is first  # remembered for the other streams
    assert changed_names(new, same_bytes) == frozenset()


def test_requests_listing_the_same_names_share_one_tuple_of_interned_names() -> None:
    names = [f"outbound|80||svc-{i}.default.svc.cluster.local" for i in range(3)]
    raw = discovery_pb2.DiscoveryRequest(type_url=ENDPOINT, resource_names=names)
    first, second = (to_request(discovery_pb2.DiscoveryRequest.FromString(
        raw.SerializeToString())) for _ in range(2))  # fmt: skip
    assert first.resource_names == tuple(names)
    assert first.resource_names is second.resource_names
    other = to_request(discovery_pb2.DiscoveryRequest(type_url=ENDPOINT, resource_names=names[:1]))
    assert other.resource_names == tuple(names[:1])
    assert other.resource_names[0] is first.resource_names[0]  # interned: one string
    again = to_request(raw)  # not the list found last for the type: from the table
    assert again.resource_names is first.resource_names


def test_a_stream_owed_nothing_holds_the_configs_own_mapping_not_a_copy() -> None:
    """1,000 SotW streams subscribed to 1,000 endpoint sets each held a dict of 1,000
    entries (~50 MiB in all at 1,000 x 1,000): once owed nothing, the config's mapping."""
    names = tuple(f"e{i}" for i in range(100))
    cfg = ProxyConfig.of([endpoints(n, [1]) for n in names])
    state = StreamState()
    state.on_request(Request(ENDPOINT, resource_names=names), NOW)
    [p] = state.plan(cfg)
    ack(state, p, names)
    eds = state.types[ENDPOINT]
    have = cfg.resources(ENDPOINT)
    assert eds.named.holds_only(have)
    assert all(eds.named[n] is have[n] for n in names)
    newer = ProxyConfig.of([endpoints(n, [2] if n == "e7" else [1]) for n in names])
    [q] = state.plan(newer)
    assert [r.name for r in q.resources] == ["e7"]
    assert eds.named.holds_only(newer.resources(ENDPOINT))


def test_a_wildcard_type_holds_the_configs_own_mapping_not_a_copy() -> None:
    cfg = ProxyConfig.of([cluster(n) for n in ("a", "b", "c")])
    state = StreamState()
    state.on_request(Request(CLUSTER), NOW)
    [p] = state.plan(cfg)
    ack(state, p)
    cds = state.types[CLUSTER]
    assert cds.sent is cfg.resources(CLUSTER) and cds.client_set() is cfg.resources(CLUSTER)
