"""The delta stream state without gRPC: what is sent (and removed) after each request."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ads_testkit import cluster, mesh
from hypothesis import given, settings
from hypothesis import strategies as st

from plait.translate.resource import ProxyConfig
from plait.translate.typeurls import CLUSTER, ENDPOINT, LISTENER, PUSH_ORDER, ROUTE
from plait.xds.delta import DeltaStreamState, PlannedDelta
from plait.xds.typestate import SyncState
from plait.xdsproto.delta import DeltaRequest

NOW = datetime(2025, 1, 1, tzinfo=UTC)


def ack(state: DeltaStreamState, *planned: PlannedDelta) -> None:
    for p in planned:
        state.on_request(DeltaRequest(p.type_url, p.nonce), NOW)


def names(p: PlannedDelta) -> list[str]:
    return [r.name for r in p.resources]


def connect(state: DeltaStreamState, config: ProxyConfig) -> list[PlannedDelta]:
    """Subscribe like Envoy (wildcard CDS/LDS, every EDS/RDS name) and ACK everything."""
    sent = []
    for type_url in PUSH_ORDER:
        wanted = () if type_url in (CLUSTER, LISTENER) else tuple(config.resources(type_url))
        state.on_request(DeltaRequest(type_url, subscribe=wanted), NOW)
        planned = state.plan(config)
        ack(state, *planned)
        sent += planned
    return sent


def reconnected(config: ProxyConfig) -> DeltaStreamState:
    """A new stream of a client that ran `config` in full: it subscribes again, announcing
    every version it holds (`initial_resource_versions`), as Envoy does after a reconnect."""
    old = DeltaStreamState()
    connect(old, config)
    state = DeltaStreamState()
    for type_url in PUSH_ORDER:
        held = dict(old.types[type_url].client)
        subscribe = ("*",) if type_url in (CLUSTER, LISTENER) else tuple(held)
        state.on_request(DeltaRequest(type_url, subscribe=subscribe, initial_versions=held), NOW)
    return state


def test_only_changed_and_removed_resources_are_sent() -> None:
    state = DeltaStreamState()
    first = mesh({"a": [1], "b": [2]}, route_to="a")
    sent = connect(state, first)
    assert sorted(n for p in sent for n in names(p)) == sorted(
        n for t in PUSH_ORDER for n in first.resources(t)
    )
    assert state.settled(first)

    second = mesh({"a": [1], "b": [3]}, route_to="a")  # only b's endpoints change
    [p] = state.plan(second)
    assert (p.type_url, names(p), p.removed) == (ENDPOINT, ["b"], ())
    assert not state.settled(second)
    ack(state, p)
    assert state.settled(second) and state.plan(second) == []


def test_the_versions_are_the_shared_bytes_digests() -> None:
    state = DeltaStreamState()
    config = ProxyConfig.of([cluster("a")])
    state.on_request(DeltaRequest(CLUSTER), NOW)
    [p] = state.plan(config)
    assert state.types[CLUSTER].client == {"a": config.resources(CLUSTER)["a"].digest}
    assert p.resources[0] is config.resources(CLUSTER)["a"]  # the same object, same bytes


def test_wildcard_types_always_answer_their_first_request() -> None:
    state = DeltaStreamState()
    state.on_request(DeltaRequest(CLUSTER), NOW)
    state.on_request(DeltaRequest(LISTENER), NOW)

    planned = state.plan(ProxyConfig.of([]))

    assert [(p.type_url, p.resources, p.removed) for p in planned] == [
        (CLUSTER, (), ()),
        (LISTENER, (), ()),
    ]
    ack(state, *planned)
    assert state.plan(ProxyConfig.of([])) == []


def test_cluster_removal_waits_for_routes_and_keeps_its_endpoints() -> None:
    state = DeltaStreamState()
    connect(state, mesh({"a": [1], "b": [2]}, route_to="a"))

    moved = mesh({"b": [2]}, route_to="b")  # routes move to b and a goes
    planned = state.plan(moved)
    assert [(p.type_url, p.removed) for p in planned] == [(ROUTE, ())]  # a kept meanwhile
    ack(state, *planned)
    planned = state.plan(moved)
    assert [(p.type_url, p.removed) for p in planned] == [(CLUSTER, ("a",)), (ENDPOINT, ("a",))]
    ack(state, *planned)
    assert state.settled(moved)


def test_a_changed_cluster_gets_its_endpoints_again() -> None:
    state = DeltaStreamState()
    connect(state, mesh({"a": [1]}, route_to="a"))

    planned = state.plan(mesh({"a": [1]}, route_to="a", timeouts={"a": 250}))

    assert [(p.type_url, names(p)) for p in planned] == [(CLUSTER, ["a"]), (ENDPOINT, ["a"])]


def test_a_nacked_resource_is_not_resent_and_the_rest_flows() -> None:
    state = DeltaStreamState()
    connect(state, ProxyConfig.of([cluster("a"), cluster("b")]))
    bad = ProxyConfig.of([cluster("a", 250), cluster("b", 0)])
    [p] = state.plan(bad)
    error = "Error adding/updating cluster(s) b: timeout must be positive"
    state.on_request(DeltaRequest(CLUSTER, p.nonce, error=error), NOW)

    cds = state.types[CLUSTER]
    assert state.plan(bad) == [] and cds.sync_state(bad) is SyncState.NACK
    assert cds.nack is not None and cds.nack.message == error
    later = ProxyConfig.of([cluster("a", 300), cluster("b", 0)])
    [p] = state.plan(later)
    assert names(p) == ["a"]  # the others change on; b is not sent again
    ack(state, p)
    assert cds.sync_state(later) is SyncState.NACK  # b still stands refused
    fixed = ProxyConfig.of([cluster("a", 300), cluster("b", 500)])
    [p] = state.plan(fixed)
    assert names(p) == ["b"]
    ack(state, p)
    assert cds.sync_state(fixed) is SyncState.SYNCED and cds.nack is None


def test_a_reconnect_with_initial_versions_gets_only_what_differs() -> None:
    before = mesh({"a": [1], "b": [2]}, route_to="a")
    old = DeltaStreamState()
    connect(old, before)
    held = {t: dict(old.types[t].client) for t in PUSH_ORDER}

    now = mesh({"a": [1], "c": [3]}, route_to="c")  # b went, c came, the routes changed
    state = DeltaStreamState()
    for type_url in PUSH_ORDER:
        wildcard = type_url in (CLUSTER, LISTENER)
        subscribe = ("*",) if wildcard else tuple(held[type_url])
        req = DeltaRequest(type_url, subscribe=subscribe, initial_versions=held[type_url])
        state.on_request(req, NOW)
    state.on_request(DeltaRequest(ENDPOINT, subscribe=("c",)), NOW)
    planned = state.plan(now)

    assert {p.type_url: (names(p), p.removed) for p in planned} == {
        CLUSTER: (["c"], ()),  # b's removal waits for the routes
        ENDPOINT: (["c"], ()),
        LISTENER: ([], ()),  # answered: the first request of a wildcard type
        ROUTE: (["outbound-routes"], ()),
    }
    ack(state, *planned)
    planned = state.plan(now)
    assert [(p.type_url, names(p), p.removed) for p in planned] == [
        (CLUSTER, [], ("b",)),
        (ENDPOINT, [], ("b",)),
    ]


def test_a_revert_to_what_the_client_kept_ends_the_nack() -> None:
    state = DeltaStreamState()
    good = ProxyConfig.of([cluster("a")])
    connect(state, good)
    bad = ProxyConfig.of([cluster("a", 0)])
    [p] = state.plan(bad)
    state.on_request(
        DeltaRequest(CLUSTER, p.nonce, error="Error adding/updating cluster(s) a: x"), NOW
    )
    assert state.types[CLUSTER].sync_state(bad) is SyncState.NACK

    assert state.plan(good) == []  # Envoy still runs the good one: nothing to send

    assert state.types[CLUSTER].sync_state(good) is SyncState.SYNCED


def test_streams_in_step_share_the_config_instead_of_copying_names() -> None:
    config = mesh({"a": [1], "b": [2]}, route_to="a")
    one, two = DeltaStreamState(), DeltaStreamState()
    connect(one, config)
    connect(two, config)

    for type_url in PUSH_ORDER:
        held_one, held_two = one.types[type_url].client, two.types[type_url].client
        assert held_one.base is held_two.base is config.resources(type_url)
        assert held_one.own_names() == [] == held_two.own_names()


def test_a_reconnected_stream_in_step_drops_what_it_announced() -> None:
    config = mesh({"a": [1], "b": [2]}, route_to="a")
    state = reconnected(config)

    planned = state.plan(config)

    assert [(p.type_url, p.resources, p.removed) for p in planned] == [
        (CLUSTER, (), ()),
        (LISTENER, (), ()),
    ]
    for type_url in PUSH_ORDER:
        assert state.types[type_url].client.own_names() == []
        assert state.types[type_url].client.base is config.resources(type_url)


def test_quiet_says_when_a_plan_would_send_nothing() -> None:
    state = DeltaStreamState()
    config = mesh({"a": [1], "b": [2]}, route_to="a")
    assert state.quiet(config)  # nothing requested: nothing to send
    state.on_request(DeltaRequest(CLUSTER), NOW)
    assert not state.quiet(config)  # the first CDS request is owed a reply
    state = DeltaStreamState()
    connect(state, config)
    assert state.quiet(config) and state.plan(config) == []

    changed = mesh({"a": [1], "b": [3]}, route_to="a")
    assert not state.quiet(changed)
    ack(state, *state.plan(changed))
    assert state.quiet(changed)

    state.on_request(DeltaRequest(ENDPOINT, subscribe=("a",)), NOW)  # "send it again"
    assert not state.quiet(changed)
    assert [names(p) for p in state.plan(changed)] == [["a"]]


def test_a_reconnected_stream_is_not_quiet_while_its_announcement_stands() -> None:
    config = mesh({"a": [1], "b": [2]}, route_to="a")
    state = reconnected(config)
    assert not state.quiet(config)
    ack(state, *state.plan(config))
    assert state.quiet(config)


CONFIGS = [
    mesh({"a": [1], "b": [2]}, route_to="a"),
    mesh({"a": [1], "b": [3]}, route_to="a"),
    mesh({"a": [1], "c": [3]}, route_to="c"),
    mesh({"a": [1]}, route_to="a", timeouts={"a": 250}),
]
_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("config"), st.integers(0, len(CONFIGS) - 1)),
        st.tuples(st.just("ack"), st.integers(0, 3)),
        st.tuples(st.just("nack"), st.integers(0, 3)),
        st.tuples(st.just("subscribe"), st.sampled_from(["a", "b", "c"])),
        st.tuples(st.just("unsubscribe"), st.sampled_from(["a", "b", "c"])),
        st.tuples(st.just("plan"), st.just(0)),
    ),
    max_size=25,
)


@settings(max_examples=300, deadline=None)
@given(ops=_OPS)
def test_quiet_never_hides_a_response(ops: list[tuple[str, Any]]) -> None:
    """Whatever the requests, responses and configs, a quiet stream's plan is empty (so
    `Session` may skip planning for it)."""
    state = DeltaStreamState()
    config = CONFIGS[0]
    for t in PUSH_ORDER:
        wanted = () if t in (CLUSTER, LISTENER) else tuple(config.resources(t))
        state.on_request(DeltaRequest(t, subscribe=wanted), NOW)
    in_flight: list[PlannedDelta] = []
    for op, arg in ops:
        if op == "config":
            config = CONFIGS[arg]
        elif op in ("ack", "nack") and in_flight:
            p = in_flight.pop(arg % len(in_flight))
            error = f"Error adding/updating cluster(s) {names(p)[:1]}: x" if op == "nack" else None
            state.on_request(DeltaRequest(p.type_url, p.nonce, error=error), NOW)
        elif op == "subscribe":
            state.on_request(DeltaRequest(ENDPOINT, subscribe=(arg,)), NOW)
        elif op == "unsubscribe":
            state.on_request(DeltaRequest(ENDPOINT, unsubscribe=(arg,)), NOW)
        if state.quiet(config):
            assert state.plan(config) == []
            assert state.quiet(config)
        elif op == "plan":
            in_flight += state.plan(config)
