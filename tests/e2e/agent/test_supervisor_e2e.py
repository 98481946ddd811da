"""The Envoy supervisor with a real Envoy and a stub ADS server: readiness, restart, stop."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from pathlib import Path

import pytest
from ads_stub import CLUSTER, LISTENER, AdsServer, direct_response_listener
from agent_e2e import EnvoyFactory, eventually, free_port, http_get, make_proxy, pid_alive
from google.protobuf import json_format

from plait.agent import admin
from plait.agent.supervisor import READINESS_STATS
from plait.errors import EnvoyError
from plait.model.proxy import from_node_metadata

pytestmark = pytest.mark.e2e


def serve_listener(ads: AdsServer, port: int, status: int = 200) -> None:
    ads.servicer.set_resources({CLUSTER: [], LISTENER: [direct_response_listener(port, status)]})


async def test_ready_only_after_the_control_plane_served_config(
    envoys: EnvoyFactory, ads: AdsServer
) -> None:
    port = free_port()
    proxy = make_proxy("web-0")
    envoy = envoys(proxy)
    await envoy.start()

    with pytest.raises(EnvoyError, match="not ready after 1s: /ready=(PRE_)?INITIALIZING"):
        await envoy.wait_ready(1.0)
    assert not envoy.is_ready()
    assert envoy.admin_url is not None
    assert await admin.server_state(envoy.admin_url) != admin.LIVE

    serve_listener(ads, port)
    await envoy.wait_ready(10)

    assert envoy.is_ready()
    assert await http_get(f"http://127.0.0.1:{port}/") == (200, "ok")
    counts = await admin.stats(envoy.admin_url, READINESS_STATS)
    assert counts["cluster_manager.cds.update_success"] >= 1
    assert counts["listener_manager.lds.update_success"] >= 1
    node = ads.servicer.nodes[0]
    assert from_node_metadata(node.id, json_format.MessageToDict(node.metadata)) == proxy
    dump = await admin.config_dump(envoy.admin_url)
    assert f"stub_{port}" in str(dump)


async def test_never_ready_when_the_control_plane_serves_nothing(envoys: EnvoyFactory) -> None:
    envoy = envoys()
    await envoy.start()

    with pytest.raises(EnvoyError, match="is the control plane at 127.0.0.1:\\d+ serving"):
        await envoy.wait_ready(1.5)
    assert not envoy.is_ready()


async def test_a_rejected_config_is_not_ready_and_says_nack(
    envoys: EnvoyFactory, ads: AdsServer
) -> None:
    serve_listener(ads, free_port(), status=99)  # out of range: Envoy NACKs the listener
    envoy = envoys()
    await envoy.start()

    await eventually(lambda: asyncio.sleep(0, bool(ads.servicer.nacks)), 5, "Envoy NACKs")
    with pytest.raises(EnvoyError, match="lds ok=0 rejected=1.*NACK"):
        await envoy.wait_ready(1.0)
    assert "status" in ads.servicer.nacks[0]


async def test_a_killed_envoy_is_restarted_and_traffic_recovers(
    envoys: EnvoyFactory, ads: AdsServer
) -> None:
    port = free_port()
    serve_listener(ads, port)
    envoy = envoys()
    await envoy.start()
    await envoy.wait_ready(10)
    assert await http_get(f"http://127.0.0.1:{port}/") == (200, "ok")
    old_pid = envoy.pid
    assert old_pid is not None

    os.kill(old_pid, signal.SIGKILL)

    async def serves_again() -> bool:
        return await http_get(f"http://127.0.0.1:{port}/", timeout=0.5) == (200, "ok")

    await eventually(lambda: asyncio.sleep(0, not pid_alive(old_pid)), 2, "old Envoy gone")
    await eventually(serves_again, 5.0, "traffic through the restarted Envoy")
    await envoy.wait_ready(5)
    assert envoy.restarts == 1
    assert envoy.pid not in (None, old_pid)
    assert "restart 1" in envoy.log_path.read_text()


async def test_stop_drains_and_leaves_no_envoy(envoys: EnvoyFactory, ads: AdsServer) -> None:
    port = free_port()
    serve_listener(ads, port)
    admin_port = free_port()
    envoy = envoys(admin_port=admin_port)
    await envoy.start()
    await envoy.wait_ready(10)
    assert envoy.admin_url == f"http://127.0.0.1:{admin_port}"
    pid = envoy.pid
    assert pid is not None

    started = time.monotonic()
    await envoy.stop()

    assert time.monotonic() - started < 5
    assert not pid_alive(pid)
    assert envoy.pid is None and not envoy.is_ready()
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port)):
        pass
    await envoy.stop()  # idempotent


async def test_stop_waits_a_bounded_time_for_open_connections(
    envoys: EnvoyFactory, ads: AdsServer
) -> None:
    port = free_port()
    serve_listener(ads, port)
    envoy = envoys(drain_timeout_s=0.5)
    await envoy.start()
    await envoy.wait_ready(10)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.1\r\nHost: web\r\n\r\n")  # keep-alive, then idle
    assert (await reader.readuntil(b"ok")).startswith(b"HTTP/1.1 200")

    started = time.monotonic()
    await envoy.stop()
    took = time.monotonic() - started

    assert 0.5 <= took < 2.5  # waited for the idle connection, then ended Envoy
    assert await reader.read() == b""  # closed by Envoy
    writer.close()


async def test_a_cancelled_stop_still_kills_envoy(envoys: EnvoyFactory, ads: AdsServer) -> None:
    port = free_port()
    serve_listener(ads, port)
    envoy = envoys(drain_timeout_s=30)
    await envoy.start()
    await envoy.wait_ready(10)
    url, pid = envoy.admin_url, envoy.pid
    assert url is not None and pid is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", port)  # holds the drain open
    writer.write(b"GET / HTTP/1.1\r\nHost: web\r\n\r\n")
    await reader.readuntil(b"ok")
    stopping = asyncio.create_task(envoy.stop())

    async def draining() -> bool:
        return await admin.server_state(url) == "DRAINING"

    await eventually(draining, 5, "Envoy draining")
    stopping.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stopping

    assert not pid_alive(pid)
    writer.close()


async def test_cancelling_run_stops_envoy(envoys: EnvoyFactory, ads: AdsServer) -> None:
    serve_listener(ads, free_port())
    envoy = envoys()
    task = asyncio.create_task(envoy.run())
    await envoy.wait_ready(10)
    pid = envoy.pid
    assert pid is not None

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert not pid_alive(pid)


async def test_envoy_has_its_own_session_so_ctrl_c_does_not_reach_it(
    envoys: EnvoyFactory,
) -> None:
    envoy = envoys()
    await envoy.start()
    assert envoy.pid is not None

    assert os.getsid(envoy.pid) == envoy.pid != os.getsid(0)


async def test_start_fails_clearly_when_the_admin_port_is_taken(
    envoys: EnvoyFactory,
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        envoy = envoys(admin_port=taken.getsockname()[1])

        with pytest.raises(EnvoyError, match="did not start: it exited with code"):
            await envoy.start()

    assert envoy.pid is None


CHILD = """
import asyncio, sys
from pathlib import Path
from plait.agent.bootstrap import BootstrapOptions
from plait.agent.supervisor import EnvoySupervisor
from plait.model.proxy import Proxy, ProxyKind

async def main():
    proxy = Proxy(id="sidecar~orphan-0.default", kind=ProxyKind.SIDECAR, workload="orphan")
    config = BootstrapOptions(proxy, 0, "127.0.0.1", int(sys.argv[2]))
    envoy = EnvoySupervisor(config, Path(sys.argv[1]))
    await envoy.start()
    print(envoy.pid, flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


async def test_envoy_dies_with_its_parent(tmp_path: Path) -> None:
    parent = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CHILD, str(tmp_path), str(free_port()),
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    envoy_pid: int | None = None
    try:
        async with asyncio.timeout(15):
            line = await parent.stdout.readline()  # type: ignore[union-attr]
        envoy_pid = int(line)
        assert pid_alive(envoy_pid)

        parent.kill()
        await parent.wait()

        await eventually(
            lambda: asyncio.sleep(0, not pid_alive(envoy_pid)), 5, "Envoy gone with its parent"
        )
    finally:
        if parent.returncode is None:
            parent.kill()
            await parent.wait()
        if envoy_pid is not None and pid_alive(envoy_pid):
            os.kill(envoy_pid, signal.SIGKILL)
