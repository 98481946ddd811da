"""Wakeups: a new generation wakes only the streams of proxies whose config it changed."""

from __future__ import annotations

from plait.model.proxy import Proxy, ProxyKind
from plait.translate.resource import ProxyConfig, Resource
from plait.translate.typeurls import CLUSTER
from plait.xds.wakeups import Wakeups, same_config, unchanged_ids

A = Proxy(id="sidecar~a-0.default", kind=ProxyKind.SIDECAR, workload="a", outbound_port=1)
B = Proxy(id="sidecar~b-0.default", kind=ProxyKind.SIDECAR, workload="b", outbound_port=2)


def config(*names: str) -> ProxyConfig:
    return ProxyConfig.of(Resource(CLUSTER, n, n.encode(), n) for n in names)


def test_a_generation_wakes_only_the_changed_proxies() -> None:
    wakeups = Wakeups()
    a: list[int] = []
    b: list[int] = []
    with wakeups.on_change(A, 1, a.append), wakeups.on_change(B, 1, b.append):
        assert wakeups.advance({B.id}) == 2
        assert a == [2] and b == []
        assert wakeups.advance() == 3  # nothing said unchanged: everyone wakes
        assert b == [3]


def test_an_unchanged_proxy_counts_as_synced_at_the_new_generation() -> None:
    wakeups = Wakeups()
    woken: list[int] = []
    with wakeups.on_change(B, 1, woken.append):  # as a stream's, for the stream's life
        wakeups.advance({B.id})
        wakeups.advance({B.id})
        assert wakeups.unchanged_through(B, 1) == 3
        assert wakeups.unchanged_through(A, 1) == 1  # nobody waits for A: nothing known
        wakeups.advance()
        assert wakeups.unchanged_through(B, 1) == 3  # changed at 4: synced at 1 ran 1-3
        assert wakeups.unchanged_through(B, 4) == 4
        assert woken == [4]
        wakeups.advance({B.id})  # the same watch, its history kept
        assert wakeups.unchanged_through(B, 1) == 3 and wakeups.unchanged_through(B, 4) == 5


def test_two_different_proxies_of_one_node_id_always_wake() -> None:
    wakeups = Wakeups()
    relabelled = Proxy(id=A.id, kind=ProxyKind.SIDECAR, workload="a2", outbound_port=1)
    first: list[int] = []
    second: list[int] = []
    with wakeups.on_change(A, 1, first.append), wakeups.on_change(relabelled, 1, second.append):
        assert wakeups.watched() == {}  # neither can be compared for the other
        wakeups.advance({A.id})
        assert (first, second) == ([2], [2])


def test_the_watch_ends_with_its_last_stream() -> None:
    wakeups = Wakeups()
    with wakeups.on_change(A, 1, lambda _generation: None):
        with wakeups.on_change(A, 1, lambda _generation: None):
            assert wakeups.watched() == {A.id: A}
        assert wakeups.watched() == {A.id: A}  # one stream of A is still open
    assert wakeups.watched() == {}


def test_on_change_calls_back_inside_advance_for_the_changed_proxies_only() -> None:
    wakeups = Wakeups()
    woken: dict[str, list[int]] = {A.id: [], B.id: []}
    with (
        wakeups.on_change(A, 1, woken[A.id].append),
        wakeups.on_change(B, 1, woken[B.id].append),
    ):
        assert wakeups.watched() == {A.id: A, B.id: B}
        wakeups.advance({B.id})
        assert woken == {A.id: [2], B.id: []}  # no task, no loop turn: called in advance
        wakeups.advance({B.id})
        assert wakeups.unchanged_through(B, 1) == 3  # B's history while its block lasts
        wakeups.advance()
        assert woken == {A.id: [2, 3, 4], B.id: [4]}
    assert wakeups.watched() == {}  # the watches end with their blocks
    wakeups.advance()
    assert woken == {A.id: [2, 3, 4], B.id: [4]}


def test_on_change_after_an_older_generation_calls_back_at_once() -> None:
    wakeups = Wakeups()
    woken: list[int] = []
    with wakeups.on_change(A, 1, woken.append):
        assert woken == []  # nothing newer than 1 yet
    wakeups.advance()
    with wakeups.on_change(A, 1, woken.append):
        assert woken == [2]  # generation 2 may have changed A: the caller knows only 1


def test_a_failing_callback_does_not_stop_the_others() -> None:
    wakeups = Wakeups()
    woken: list[int] = []

    def broken(_generation: int) -> None:
        raise RuntimeError("a stream's bug")

    with wakeups.on_change(A, 1, broken), wakeups.on_change(B, 1, woken.append):
        assert wakeups.advance() == 2
    assert woken == [2]


def test_unchanged_ids_compares_versions_and_counts_failures_as_changed() -> None:
    c = Proxy(id="sidecar~c-0.default", kind=ProxyKind.SIDECAR, workload="c", outbound_port=3)
    new = {A.id: config("x"), B.id: config("x", "y")}

    def config_for(proxy: Proxy) -> ProxyConfig:
        if proxy.id == c.id:
            raise RuntimeError("translation failed")
        return new[proxy.id]

    before = {A.id: config("x"), B.id: config("x"), c.id: config("x")}
    watched = {p.id: p for p in (A, B, c)}
    assert unchanged_ids(watched, before, config_for) == {A.id}
    assert unchanged_ids(watched, {}, config_for) == set()  # nothing to compare with
    assert same_config(config("x"), config("x")) and not same_config(None, config("x"))
