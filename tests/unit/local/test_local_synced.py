"""When `plait up` counts the mesh as synced, read from the control plane's `/status`."""

from __future__ import annotations

from typing import Any

from plait.local.synced import all_acked

SYNCED = {"cds": "SYNCED", "eds": "SYNCED", "lds": "SYNCED", "rds": "SYNCED"}


def status(*proxies: dict[str, Any], instances: tuple[str, ...] = ("a-0",)) -> dict[str, Any]:
    return {
        "controlPlane": {"generation": 3, "instances": list(instances)},
        "proxies": list(proxies),
    }


def proxy(name: str, generation: int = 3, **sync: str) -> dict[str, Any]:
    return {"name": name, "connected": True, "generation": generation, "sync": {**SYNCED, **sync}}


def test_every_expected_proxy_acked_the_current_generation() -> None:
    assert all_acked(status(proxy("p"), proxy("q")), {"p", "q"}, {"a-0"})
    assert all_acked(status(proxy("p", rds="NOT SENT")), {"p"}, {"a-0"})


def test_a_proxy_behind_stale_or_nacking_or_missing_is_not_synced() -> None:
    assert not all_acked(status(proxy("p", generation=2)), {"p"}, {"a-0"})
    assert not all_acked(status(proxy("p", eds="STALE")), {"p"}, {"a-0"})
    assert not all_acked(status(proxy("p", lds="NOT SENT")), {"p"}, {"a-0"})
    assert not all_acked(status(proxy("p")), {"p", "q"}, {"a-0"})
    assert not all_acked(status({**proxy("p"), "connected": False}), {"p"}, {"a-0"})


def test_the_control_plane_must_have_read_the_current_registry() -> None:
    assert not all_acked(status(proxy("p"), instances=("a-0",)), {"p"}, {"a-0", "a-1"})
