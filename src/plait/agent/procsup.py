"""One supervised child process: spawn, restart with backoff, optional readiness, stop.

The one process supervisor of plait: Envoy (`agent.supervisor`, which adds Envoy's
bootstrap, admin-API readiness and drain on top), app replicas and the control plane of
`plait up` (`local.process`) and the benchmarks' Envoys (`bench.procs`) all run on it.

Failure model
-------------
- Every child is made by `agent.process.spawn`: its own session and process group (the one
  kill scope: stop and restart signal the group, and whatever the child left in its group
  when it exited is killed before the next one starts) and the parent-death signal.
- A child that exits while not stopping is restarted (`RestartPolicy.enabled`, like a
  Kubernetes container with restartPolicy Always). The first restart of a crash streak is
  immediate, then the wait doubles from `backoff_initial_s` to `backoff_max_s`; a run
  that lasted `stable_after_s` ends the streak.
- A restart that cannot spawn (the binary is gone, a fork fails) is not the end: it is
  logged and kept in `last_error` / `spawn_failures`, and retried on the same backoff.
  The supervisor never gives up on its own; only `stop()` ends it.
- `stop()` first ends supervision (no restart can start after that point: the restart
  loop runs in a task that `stop()` cancels and awaits, and a spawn cancelled half-way is
  killed by asyncio), then calls the caller's `before_term` hook (Envoy drains there),
  SIGTERMs the group, SIGKILLs it after `grace`. If `stop()` itself is cancelled it
  still SIGKILLs the group before it returns: no child outlives its supervisor.

Concurrency
-----------
One event loop. `start()` spawns the first child (raising OSError if it cannot) and hands
the rest to one task, owned by this object: it runs a `TaskGroup` holding the restart
loop and the readiness probe of the current child. `stop()` cancels and awaits that task;
if it ever fails (a bug), the failure is logged with its traceback, kept in `failure`,
and every waiter wakes. Readiness is signalled, not polled: `wait_for` sleeps on a
condition notified at every spawn, exit, readiness and failure.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from plait.agent.process import backoff_delay, signal_group, spawn, terminate

log = logging.getLogger(__name__)

Probe = Callable[[asyncio.subprocess.Process], Awaitable[bool]]
"""Readiness of one child: returns True once it is ready, False if it never will be (it
exited, a deadline passed). Cancelled when the child exits."""


@dataclass(frozen=True)
class RestartPolicy:
    """When and how fast a child that exited is started again."""

    enabled: bool = True
    backoff_initial_s: float = 0.2
    backoff_max_s: float = 5.0
    stable_after_s: float = 10.0


@dataclass(frozen=True)
class ProcessSpec:
    """What to run. stdout and stderr are appended to `log_path` (across restarts)."""

    name: str  # for logs: "Envoy p1", "reviews-v1-0"
    argv: Sequence[str]
    log_path: Path
    env: Mapping[str, str] | None = None
    cwd: Path | None = None
    log_header: bool = False  # a "--- plait: starting ... ---" line before each start
    restart: RestartPolicy = field(default_factory=RestartPolicy)


class ProcessSupervisor:
    """Runs one `ProcessSpec` until `stop()` (see the module docstring).

    `ready` is the optional readiness probe; `before_spawn(restart)` runs before every
    spawn (0 for the first), for per-process preparation such as removing a stale file;
    `changed` is the condition notified at every change (a layer on top may share its own,
    to be waited on before the process supervisor exists).
    """

    def __init__(
        self,
        spec: ProcessSpec,
        *,
        ready: Probe | None = None,
        before_spawn: Callable[[int], None] | None = None,
        changed: asyncio.Condition | None = None,
    ) -> None:
        self.spec = spec
        self.restarts = 0
        self.spawn_failures = 0
        self.last_error: str | None = None  # why the latest restart could not spawn
        self.last_exit_code: int | None = None
        self.failure: BaseException | None = None  # supervision itself failed (a bug)
        self._ready = ready
        self._before_spawn = before_spawn
        self._proc: asyncio.subprocess.Process | None = None
        self._ready_pid: int | None = None
        self._started_at = 0.0
        self._stopping = False
        self._runner: asyncio.Task[None] | None = None
        self._changed = changed if changed is not None else asyncio.Condition()

    # -- what callers read ------------------------------------------------------------

    @property
    def process(self) -> asyncio.subprocess.Process | None:
        """The latest child (running or exited), None before the first spawn."""
        return self._proc

    @property
    def pid(self) -> int | None:
        """The running child's pid; None before start, between restarts and after stop."""
        proc = self._proc
        return proc.pid if proc is not None and proc.returncode is None else None

    @property
    def stopping(self) -> bool:
        return self._stopping

    def is_ready(self) -> bool:
        """The running child passed its readiness probe (without a probe: it runs)."""
        pid = self.pid
        if self._stopping or pid is None:
            return False
        return self._ready is None or self._ready_pid == pid

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        """Wait until `predicate()` holds, re-checked at every change (bound it with
        `asyncio.timeout`)."""
        async with self._changed:
            await self._changed.wait_for(predicate)

    async def notify(self) -> None:
        """Wake `wait_for` callers (for state a layer on top keeps)."""
        async with self._changed:
            self._changed.notify_all()

    # -- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        """Spawn the first child and start supervising; raises OSError if it cannot run."""
        if self._proc is not None or self._stopping:
            raise RuntimeError(f"{self.spec.name}: a process supervisor runs once")
        first = await self._spawn(0)
        self._runner = asyncio.create_task(
            self._supervise(first), name=f"supervise {self.spec.name}"
        )  # owned here: `stop()` cancels and awaits it; `_supervise` reports its failure

    async def stop(
        self,
        grace: float,
        *,
        before_term: Callable[[asyncio.subprocess.Process], Awaitable[None]] | None = None,
    ) -> None:
        """End supervision, then the child (`before_term`, SIGTERM, SIGKILL after `grace`);
        idempotent; never returns with the child running, even when cancelled."""
        self._stopping = True
        try:
            await self._end_runner()
            await self.notify()
            proc = self._proc
            if proc is not None and proc.returncode is None:
                if before_term is not None:
                    await before_term(proc)
                await terminate(proc, grace)
        finally:  # also when cancelled: no grace then, SIGKILL at once
            self._ready_pid = None
            runner = self._runner
            if runner is not None and not runner.done():
                await asyncio.wait([runner])  # cancelled above: a spawn under way ends first
            proc = self._proc
            if proc is not None and proc.returncode is None:
                signal_group(proc, signal.SIGKILL)
                await proc.wait()

    def kill(self) -> None:
        """SIGKILL the running child's group (it is restarted unless stopping)."""
        proc = self._proc
        if proc is not None and proc.returncode is None:
            signal_group(proc, signal.SIGKILL)

    # -- internals --------------------------------------------------------------------

    async def _spawn(self, restart: int) -> asyncio.subprocess.Process:
        spec = self.spec
        self._ready_pid = None
        if self._before_spawn is not None:
            self._before_spawn(restart)
        spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        with spec.log_path.open("ab") as out:
            if spec.log_header:
                stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
                out.write(f"--- plait: starting {spec.name} at {stamp} "
                          f"(restart {restart}) ---\n".encode())  # fmt: skip
                out.flush()
            proc = await spawn(spec.argv, env=spec.env, cwd=spec.cwd, stdout=out, stderr=out)
        self._proc = proc
        self._started_at = time.monotonic()
        log.info("%s started (pid %d)", spec.name, proc.pid)
        await self.notify()
        return proc

    async def _supervise(self, proc: asyncio.subprocess.Process) -> None:
        try:
            await self._restart_loop(proc)
        except Exception as exc:  # a bug: say so, loudly, and wake every waiter
            self.failure = exc
            log.error(
                "%s: supervision failed; the process will not be restarted",
                self.spec.name,
                exc_info=exc,
            )
            await self.notify()

    async def _restart_loop(self, proc: asyncio.subprocess.Process) -> None:
        async with asyncio.TaskGroup() as tg:
            streak = 0
            while True:
                probe = tg.create_task(self._probe(proc)) if self._ready is not None else None
                code = await proc.wait()
                if probe is not None:
                    probe.cancel()
                signal_group(proc, signal.SIGKILL)  # whatever it left in its group
                self.last_exit_code = code
                uptime = time.monotonic() - self._started_at
                await self.notify()
                if not self.spec.restart.enabled:
                    log.info("%s (pid %d) exited with code %s", self.spec.name, proc.pid, code)
                    return
                if uptime >= self.spec.restart.stable_after_s:
                    streak = 0
                log.warning(
                    "%s (pid %d) exited with code %s after %.1fs; restarting it",
                    self.spec.name, proc.pid, code, uptime,
                )  # fmt: skip
                proc, streak = await self._respawn(streak)

    async def _respawn(self, streak: int) -> tuple[asyncio.subprocess.Process, int]:
        """Spawn the next child after the streak's backoff, retrying failed spawns."""
        policy = self.spec.restart
        while True:
            delay = backoff_delay(streak, policy.backoff_initial_s, policy.backoff_max_s)
            streak += 1
            await asyncio.sleep(delay)
            try:
                proc = await self._spawn(self.restarts + 1)
            except OSError as exc:
                self.spawn_failures += 1
                self.last_error = f"cannot start {self.spec.argv[0]}: {exc}"
                log.error(
                    "%s: %s (attempt %d; retrying in %.1fs)",
                    self.spec.name,
                    self.last_error,
                    self.spawn_failures,
                    backoff_delay(streak, policy.backoff_initial_s, policy.backoff_max_s),
                )
                await self.notify()
                continue
            self.restarts += 1
            self.last_error = None
            return proc, streak

    async def _probe(self, proc: asyncio.subprocess.Process) -> None:
        assert self._ready is not None
        try:
            ready = await self._ready(proc)
        except Exception:
            log.warning("%s: readiness probe failed", self.spec.name, exc_info=True)
            return
        if ready and proc.returncode is None and self._proc is proc:
            self._ready_pid = proc.pid
            log.info("%s (pid %d) is ready", self.spec.name, proc.pid)
            await self.notify()

    async def _end_runner(self) -> None:
        runner = self._runner
        if runner is None:
            return
        runner.cancel()
        await asyncio.wait([runner])
