"""Supervisor behaviour that needs no running Envoy: readiness rule, start-up failure."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from plait.agent.bootstrap import BootstrapOptions
from plait.agent.supervisor import (
    EnvoySupervisor,
    Probe,
    SupervisorOptions,
    downstream_connections,
)
from plait.errors import EnvoyError
from plait.model.proxy import Proxy, ProxyKind, node_id

PROXY = Proxy(id=node_id(ProxyKind.SIDECAR, "a-0", "default"), kind=ProxyKind.SIDECAR, workload="a")
CONFIG = BootstrapOptions(proxy=PROXY, admin_port=0, xds_host="127.0.0.1", xds_port=1)


def counters(cds: int, lds: int, cds_rejected: int = 0) -> dict[str, int]:
    return {
        "cluster_manager.cds.update_success": cds,
        "cluster_manager.cds.update_rejected": cds_rejected,
        "listener_manager.lds.update_success": lds,
        "listener_manager.lds.update_rejected": 0,
    }


@pytest.mark.parametrize(
    ("state", "cds", "lds", "ready"),
    [
        ("LIVE", 1, 1, True),
        ("LIVE", 1, 0, False),  # listeners never accepted
        ("LIVE", 0, 1, False),
        ("INITIALIZING", 1, 1, False),
        ("DRAINING", 2, 2, False),
    ],
)
def test_ready_needs_live_and_accepted_clusters_and_listeners(
    state: str, cds: int, lds: int, ready: bool
) -> None:
    assert Probe(state, counters(cds, lds)).ready is ready


def test_probe_describes_rejections() -> None:
    text = Probe("LIVE", counters(0, 0, cds_rejected=1)).describe()

    assert "cds ok=0 rejected=1" in text


def test_name_defaults_to_a_file_safe_node_id(tmp_path: Path) -> None:
    sup = EnvoySupervisor(CONFIG, tmp_path)

    assert sup.name == "sidecar_a-0.default"
    assert sup.log_path == tmp_path / "sidecar_a-0.default.envoy.log"


async def test_an_envoy_that_exits_at_once_fails_start_with_its_log(tmp_path: Path) -> None:
    false = shutil.which("false")
    assert false is not None
    sup = EnvoySupervisor(
        CONFIG, tmp_path, name="p", options=SupervisorOptions(envoy_path=Path(false))
    )

    with pytest.raises(EnvoyError, match="exited with code 1"):
        await sup.start()

    assert sup.pid is None
    assert (tmp_path / "p.bootstrap.json").is_file()


async def test_wait_ready_before_start_times_out_with_a_reason(tmp_path: Path) -> None:
    sup = EnvoySupervisor(CONFIG, tmp_path, name="p")

    with pytest.raises(EnvoyError, match="not ready after 0.1s: it was never started"):
        await sup.wait_ready(0.1)
    assert not sup.is_ready()


def test_open_connections_count_each_listener_once_and_not_admin() -> None:
    gauges = {
        "listener.127.0.0.1_15006.downstream_cx_active": 2,
        "listener.127.0.0.1_15006.worker_0.downstream_cx_active": 2,
        "listener.127.0.0.1_15001.downstream_cx_active": 1,
        "listener.admin.downstream_cx_active": 1,
        "listener.admin.main_thread.downstream_cx_active": 1,
    }

    assert downstream_connections(gauges) == 3
