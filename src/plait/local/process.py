"""A supervised child process (an app replica, the control plane), restarted if it dies.

A thin local-mode face of `agent.procsup.ProcessSupervisor`, the supervisor Envoy also
runs on: a process that exits while we are not stopping is restarted after a backoff
(immediate first, doubling to a cap, reset after a stable run), like a Kubernetes
container with restartPolicy Always. A restart that cannot spawn is retried on the same
backoff and reported (`last_error`, the log), never dropped. Children are in their own
session, so a Ctrl-C on the terminal reaches only `plait up`, which then stops them in
order; they also get SIGKILL if `plait up` itself dies (see agent.process), so none is
left behind.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from plait.agent.procsup import Probe, ProcessSpec, ProcessSupervisor, RestartPolicy


class ManagedProcess:
    """One app replica or control plane process; `start()`, then `stop()` in a `finally`."""

    def __init__(
        self,
        name: str,
        command: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: Path,
        log_path: Path,
        restart: bool = True,
        ready: Probe | None = None,
    ) -> None:
        self.name = name
        self.command = list(command)
        self.log_path = log_path
        self._sup = ProcessSupervisor(
            ProcessSpec(
                name=name,
                argv=self.command,
                log_path=log_path,
                env=dict(env),
                cwd=cwd,
                restart=RestartPolicy(enabled=restart),
            ),
            ready=ready,
        )

    @property
    def pid(self) -> int | None:
        return self._sup.pid

    @property
    def restarts(self) -> int:
        return self._sup.restarts

    @property
    def last_error(self) -> str | None:
        """Why the latest restart could not spawn (None once one succeeds)."""
        return self._sup.last_error

    def is_ready(self) -> bool:
        """Running and, with a readiness probe, ready."""
        return self._sup.is_ready()

    async def wait_ready(self) -> None:
        """Wait (signalled, not polled) until `is_ready()`; bound it with `asyncio.timeout`."""
        await self._sup.wait_for(self._sup.is_ready)

    async def start(self) -> None:
        """Start the process; raises OSError if the command cannot be executed."""
        await self._sup.start()

    async def stop(self, grace: float = 5.0) -> None:
        """SIGTERM, then SIGKILL after `grace` seconds (to its process group); returns once
        the process is gone, and no restart can follow."""
        await self._sup.stop(grace)

    def kill(self) -> None:
        """SIGKILL the current process (tests; it is restarted unless stopping)."""
        self._sup.kill()
