"""The one process supervisor: restart with backoff, readiness, a stop that wins."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from plait.agent.procsup import ProcessSpec, ProcessSupervisor, RestartPolicy
from prockit import alive, until


def sh(tmp_path: Path, body: str, restart: RestartPolicy | None = None) -> ProcessSpec:
    return ProcessSpec(
        name="child",
        argv=["/bin/sh", "-c", body],
        log_path=tmp_path / "child.log",
        log_header=True,
        restart=restart or RestartPolicy(),
    )


async def test_a_crash_loop_backs_off(tmp_path: Path) -> None:
    sup = ProcessSupervisor(
        sh(tmp_path, "exit 3", RestartPolicy(backoff_initial_s=0.3, backoff_max_s=0.3))
    )
    await sup.start()
    try:
        await asyncio.sleep(1.0)
        # immediate, then every 0.3 s: at most 1 + 1.0 / 0.3 restarts
        assert 1 <= sup.restarts <= 4
        assert sup.last_exit_code == 3
    finally:
        await sup.stop(1)
    assert sup.pid is None
    log = (tmp_path / "child.log").read_text()
    assert log.count("--- plait: starting child at") == sup.restarts + 1


async def test_backoff_resets_after_a_stable_run(tmp_path: Path) -> None:
    spec = sh(tmp_path, "sleep 0.3", RestartPolicy(backoff_initial_s=5.0, stable_after_s=0.2))
    sup = ProcessSupervisor(spec)
    await sup.start()
    try:
        # without the reset the second restart would wait 5 s
        await until(lambda: sup.restarts >= 2, 4, "two restarts")
    finally:
        await sup.stop(1)


async def test_no_restart_when_disabled(tmp_path: Path) -> None:
    sup = ProcessSupervisor(sh(tmp_path, "exit 0", RestartPolicy(enabled=False)))
    await sup.start()
    try:
        async with asyncio.timeout(5):
            await sup.wait_for(lambda: sup.last_exit_code is not None)
        await asyncio.sleep(0.3)
        assert sup.restarts == 0 and sup.pid is None
    finally:
        await sup.stop(1)


async def test_stop_during_backoff_starts_nothing_after_it_returns(tmp_path: Path) -> None:
    sup = ProcessSupervisor(
        sh(tmp_path, "exit 1", RestartPolicy(backoff_initial_s=0.05, backoff_max_s=0.05))
    )
    await sup.start()
    await until(lambda: sup.restarts >= 3, 5, "a crash loop")
    await sup.stop(1)
    restarts = sup.restarts
    await asyncio.sleep(0.3)
    assert sup.restarts == restarts and sup.pid is None


async def test_readiness_is_signalled_per_process(tmp_path: Path) -> None:
    marker = tmp_path / "ready"
    gate = asyncio.Event()

    async def ready(proc: asyncio.subprocess.Process) -> bool:
        await gate.wait()
        return proc.returncode is None

    sup = ProcessSupervisor(sh(tmp_path, f"touch {marker}; exec sleep 60"), ready=ready)
    await sup.start()
    try:
        assert not sup.is_ready()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await sup.wait_for(sup.is_ready)
        gate.set()
        async with asyncio.timeout(5):
            await sup.wait_for(sup.is_ready)
        first = sup.pid
        gate.clear()
        sup.kill()
        await until(lambda: sup.pid not in (None, first), 5, "a restart")
        assert not sup.is_ready()  # the new process has not passed its probe yet
        gate.set()
        async with asyncio.timeout(5):
            await sup.wait_for(sup.is_ready)
    finally:
        await sup.stop(1)
    assert not sup.is_ready()


async def test_a_cancelled_stop_still_kills_the_child(tmp_path: Path) -> None:
    trapped = tmp_path / "trapped"
    sup = ProcessSupervisor(
        sh(tmp_path, f"trap '' TERM; touch {trapped}; while :; do sleep 0.05; done")
    )
    await sup.start()
    pid = sup.pid
    assert pid is not None
    await until(trapped.exists, 5, "the child to ignore SIGTERM")
    stopping = asyncio.create_task(sup.stop(30))
    await asyncio.sleep(0.2)  # SIGTERM sent and ignored; waiting out the grace
    stopping.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stopping
    assert not alive(pid)


async def test_start_raises_when_the_program_cannot_run(tmp_path: Path) -> None:
    spec = ProcessSpec(name="x", argv=[str(tmp_path / "missing")], log_path=tmp_path / "x.log")
    sup = ProcessSupervisor(spec)
    with pytest.raises(FileNotFoundError):
        await sup.start()
    await sup.stop(1)
