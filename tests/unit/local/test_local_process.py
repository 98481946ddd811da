"""ManagedProcess: app replicas and the control plane of `plait up`, restarted when they die."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import pytest

from plait.local.process import ManagedProcess
from prockit import alive, until


def script(path: Path, body: str) -> Path:
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return path


async def test_a_restart_that_cannot_spawn_is_retried_until_it_can(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = script(tmp_path / "app.sh", "exec sleep 60")
    proc = ManagedProcess("app-0", [str(app)], env={}, cwd=tmp_path, log_path=tmp_path / "a.log")
    await proc.start()
    try:
        first = proc.pid
        assert first is not None
        app.chmod(stat.S_IRUSR | stat.S_IWUSR)  # the next spawn fails with PermissionError
        caplog.set_level(logging.ERROR)
        proc.kill()
        await until(
            lambda: any("app-0" in r.getMessage() for r in caplog.records), 5, "a spawn error"
        )
        assert proc.pid is None

        app.chmod(0o755)

        await until(lambda: proc.pid is not None, 10, "the replica to run again")
        assert proc.pid != first
        assert proc.restarts == 1
    finally:
        await proc.stop(grace=1)
    assert proc.pid is None


async def test_stop_kills_the_whole_process_group(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    app = script(tmp_path / "app.sh", f"sleep 60 & echo $! > {pid_file}; wait")
    proc = ManagedProcess("app-0", [str(app)], env={}, cwd=tmp_path, log_path=tmp_path / "a.log")
    await proc.start()
    try:
        await until(lambda: pid_file.exists() and pid_file.read_text().strip() != "", 5, "child")
        child = int(pid_file.read_text())
    finally:
        await proc.stop(grace=1)

    await until(lambda: not alive(child), 5, "the app's own child to be killed")
