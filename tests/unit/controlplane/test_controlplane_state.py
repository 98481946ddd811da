"""MeshState: generations, waiting for one, and a failing translation keeping the last config."""

from __future__ import annotations

import asyncio

import pytest

from plait.api import load_text
from plait.controlplane.state import MeshState
from plait.model.proxy import Proxy, ProxyKind
from plait.model.snapshot import MeshSnapshot, build_snapshot
from plait.translate import typeurls
from plait.translate.proxy import Translator
from plait.translate.resource import ProxyConfig

SERVICE = """
apiVersion: v1
kind: Service
metadata: {{name: {name}}}
spec:
  selector: {{app: {name}}}
  ports: [{{name: http, port: 80}}]
"""

A = Proxy(id="sidecar~a-0.default", kind=ProxyKind.SIDECAR, workload="a", outbound_port=1)
B = Proxy(id="sidecar~b-0.default", kind=ProxyKind.SIDECAR, workload="b", outbound_port=2)


def snapshot(*names: str, version: int = 1) -> MeshSnapshot:
    text = "---\n".join(SERVICE.format(name=n) for n in names)
    return build_snapshot(load_text(text, "m.yaml").resources, (), version)


def cluster_names(config: ProxyConfig) -> list[str]:
    """The service clusters (not egress's PassthroughCluster)."""
    return sorted(n for n in config.resources(typeurls.CLUSTER) if n.startswith("outbound|"))


async def test_publish_bumps_the_generation_and_swaps_the_snapshot() -> None:
    first, second = snapshot("a"), snapshot("a", "b", version=2)
    state = MeshState(first)
    assert state.generation == 1
    assert state.snapshot is first
    assert await state.publish(second) == 2
    assert state.generation == 2
    assert state.snapshot is second
    assert cluster_names(state.config_for(A)) == [
        "outbound|80||a.default.svc.cluster.local",
        "outbound|80||b.default.svc.cluster.local",
    ]


async def test_wait_for_generation_returns_at_once_when_already_newer() -> None:
    state = MeshState(snapshot("a"))
    assert await asyncio.wait_for(state.wait_for_generation(0), 1) == 1


async def test_wait_for_generation_wakes_on_publish() -> None:
    state = MeshState(snapshot("a"))
    waiter = asyncio.create_task(state.wait_for_generation(1))
    await asyncio.sleep(0)
    assert not waiter.done()
    await state.publish(snapshot("b"))
    assert await asyncio.wait_for(waiter, 1) == 2


async def test_several_waiters_all_wake() -> None:
    state = MeshState(snapshot("a"))
    waiters = [asyncio.create_task(state.wait_for_generation(1)) for _ in range(3)]
    await asyncio.sleep(0)
    await state.publish(snapshot("b"))
    assert await asyncio.wait_for(asyncio.gather(*waiters), 1) == [2, 2, 2]


def failing_for(proxy_id: str, monkeypatch: pytest.MonkeyPatch) -> None:
    real = Translator.config_for

    def config_for(self: Translator, proxy: Proxy) -> ProxyConfig:
        if proxy.id == proxy_id:
            raise ValueError("boom")
        return real(self, proxy)

    monkeypatch.setattr(Translator, "config_for", config_for)


async def test_a_translation_failure_keeps_that_proxys_last_config(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    state = MeshState(snapshot("a"))
    before_a = state.config_for(A)
    state.config_for(B)
    await state.publish(snapshot("a", "b"))
    failing_for(A.id, monkeypatch)

    assert state.config_for(A) is before_a  # A keeps what it had
    assert state.translation_errors == {A.id: "ValueError: boom"}
    assert len(cluster_names(state.config_for(B))) == 2  # B moves on
    assert B.id not in state.translation_errors

    monkeypatch.undo()
    assert len(cluster_names(state.config_for(A))) == 2
    assert state.translation_errors == {}


def test_a_translation_failure_without_a_previous_config_raises(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    state = MeshState(snapshot("a"))
    failing_for(A.id, monkeypatch)
    with pytest.raises(ValueError, match="boom"):
        state.config_for(A)
    assert state.translation_errors == {A.id: "ValueError: boom"}
    assert state.config_for(B).resources(typeurls.CLUSTER)


async def test_publish_wakes_only_the_streams_whose_proxy_config_changed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    state = MeshState(snapshot("a"))
    state.config_for(A), state.config_for(B)
    woken_a: list[int] = []
    woken_b: list[int] = []
    with state.on_change(A, 1, woken_a.append), state.on_change(B, 1, woken_b.append):
        assert await state.publish(snapshot("a", version=2)) == 2  # the same mesh again
        assert woken_a == [] and woken_b == []
        assert state.unchanged_through(A, 1) == 2  # synced at 1 counts as synced at 2

        failing_for(A.id, monkeypatch)  # a failing translation counts as a change
        assert await state.publish(snapshot("a", version=3)) == 3
        assert woken_a == [3] and woken_b == []

        monkeypatch.undo()
        assert await state.publish(snapshot("a", "b", version=4)) == 4  # a new cluster for B
        assert woken_b == [4]
    assert state.unchanged_through(B, 1) == 1  # the streams gone: nothing known


async def test_a_proxy_whose_translation_failed_is_woken_when_it_recovers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    state = MeshState(snapshot("a"))
    state.config_for(A)
    failing_for(A.id, monkeypatch)
    woken: list[int] = []
    with state.on_change(A, 1, woken.append):
        assert await state.publish(snapshot("a", version=2)) == 2
        assert woken == [2]
        state.config_for(A)  # its stream asks: the last good config, and the error
        assert A.id in state.translation_errors

        monkeypatch.undo()  # the same config as its last good one, but the error must go
        assert await state.publish(snapshot("a", version=3)) == 3
        assert woken == [2, 3]
        state.config_for(A)
        assert state.translation_errors == {}


async def test_a_config_of_an_older_generation_is_not_taken_for_what_a_stream_holds() -> None:
    state = MeshState(snapshot("a"))
    state.config_for(A)  # an earlier stream of A was given generation 1's config, and left
    await state.publish(snapshot("a", "b", version=2))  # nobody waits for A: not compared
    woken: list[int] = []
    with state.on_change(A, 2, woken.append):  # A's new stream, at 2
        # generation 3 equals generation 1 for A, not generation 2, which its stream may hold
        assert await state.publish(snapshot("a", version=3)) == 3
        assert woken == [3]
