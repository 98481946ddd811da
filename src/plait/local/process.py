"""A supervised child process (an app replica, the control plane), restarted if it dies.

Failure model: a process that exits while we are not stopping is restarted after a
backoff (immediate first, doubling to a cap), like a Kubernetes container with
restartPolicy Always. Children are in their own session, so a Ctrl-C on the terminal
reaches only `plait up`, which then stops them in order; they also get SIGKILL if
`plait up` itself dies (see agent.process.die_with_parent_hook), so none is left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Mapping, Sequence
from pathlib import Path

from plait.agent.process import backoff_delay, die_with_parent_hook

log = logging.getLogger(__name__)


class ManagedProcess:
    def __init__(
        self,
        name: str,
        command: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: Path,
        log_path: Path,
        restart: bool = True,
    ) -> None:
        self.name = name
        self.command = list(command)
        self.env = dict(env)
        self.cwd = cwd
        self.log_path = log_path
        self.restart = restart
        self.restarts = 0
        self._proc: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.returncode is None else None

    async def _spawn(self) -> asyncio.subprocess.Process:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as out:
            return await asyncio.create_subprocess_exec(
                *self.command,
                cwd=self.cwd,
                env=self.env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent_hook(),
            )

    async def start(self) -> None:
        """Start the process; raises OSError if the command cannot be executed."""
        self._proc = await self._spawn()
        self._task = asyncio.create_task(self._watch(), name=f"supervise {self.name}")

    async def _watch(self) -> None:
        streak = 0
        while True:
            assert self._proc is not None
            code = await self._proc.wait()
            if self._stopping or not self.restart:
                return
            log.warning("%s exited with %s; restarting", self.name, code)
            await asyncio.sleep(backoff_delay(streak, 0.2, 5.0))
            streak += 1
            if self._stopping:
                return
            try:
                self._proc = await self._spawn()
            except OSError:
                log.exception("cannot restart %s", self.name)
                return
            self.restarts += 1

    async def stop(self, grace: float = 5.0) -> None:
        """SIGTERM, then SIGKILL after `grace` seconds; returns once the process is gone."""
        self._stopping = True
        proc = self._proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), grace)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def kill(self) -> None:
        """SIGKILL the current process (tests, and the supervisor's own restart path)."""
        if self._proc is not None and self._proc.returncode is None:
            self._proc.kill()
