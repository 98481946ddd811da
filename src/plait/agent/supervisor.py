"""Running one Envoy: start it, know when it is ready, restart it when it dies, stop it.

Failure model
-------------
- Envoy exits on its own (crash, OOM kill, someone's SIGKILL): the supervisor starts a
  new Envoy from the same bootstrap file. Envoy keeps no state worth saving: the new
  process reconnects to the control plane over ADS and receives its whole configuration
  again; until then it is not ready (`is_ready()` is False).
- Restarts back off: the first restart of a crash streak is immediate, then the wait
  doubles from `backoff_initial_s` up to `backoff_max_s`; a run that lasted
  `stable_after_s` ends the streak. The supervisor never gives up: a crash loop shows as
  a growing `restarts` count and in the log.
- `stop()` is the only way Envoy ends without a restart: it fails Envoy's health check
  (`POST /healthcheck/fail`), starts a graceful drain of every listener (`POST
  /drain_listeners?graceful`; not `inboundonly`, a sidecar drains both directions), waits
  at most `drain_timeout_s` for downstream connections to close, sends SIGTERM, and
  SIGKILL after `term_timeout_s`. If `stop()` itself is cancelled, it still sends
  SIGKILL before it returns: no Envoy outlives its supervisor.
- The parent process dies without stopping (SIGKILL, crash): on Linux the kernel
  SIGKILLs Envoy (`PR_SET_PDEATHSIG`, see `agent.process`).
- Ctrl-C on a terminal: Envoy runs in its own session (`start_new_session`), so the
  terminal's SIGINT reaches plait only, which then stops Envoy with a drain.

Readiness
---------
Envoy is ready when admin `/ready` answers 200 `LIVE` (its initial CDS/LDS fetch is
over; the bootstrap sets `initial_fetch_timeout: 0s`, so that happens only once the
control plane has answered) **and** the stats show `cluster_manager.cds.update_success`
≥ 1 and `listener_manager.lds.update_success` ≥ 1 — LIVE alone would also follow a
rejected (NACKed, `update_rejected`) first update or an expired fetch timeout.

Concurrency
-----------
Everything runs on one event loop. A monitor task owns the process: it waits for it to
exit and starts the next one. For each Envoy process a watch task learns the admin
address (Envoy writes it to `--admin-address-path`, so admin port 0 works) and polls the
admin API until the process is ready. A condition variable tells `wait_ready` about every
change. Envoy's stdout and stderr go to `<run_dir>/<name>.envoy.log` (appended across
restarts); stderr rather than `--log-path`, because Envoy buffers `--log-path` writes and
loses them when it is killed, which is when the log is needed most.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from plait.agent import admin
from plait.agent.bootstrap import BootstrapOptions, bootstrap
from plait.agent.envoy import find_envoy
from plait.agent.lifecycle import StartStop
from plait.agent.process import backoff_delay, die_with_parent_hook, tail
from plait.errors import EnvoyError

log = logging.getLogger(__name__)

READINESS_STATS = r"^(cluster_manager\.cds|listener_manager\.lds)\.update_(success|rejected)$"
ACTIVE_CONNECTIONS = r"^listener\..*\.downstream_cx_active$"
_ADDRESS = re.compile(r"^(?P<host>\S+):(?P<port>\d+)$")


@dataclass(frozen=True)
class SupervisorOptions:
    """How the supervisor runs Envoy; every default suits local mode."""

    log_level: str = "info"
    drain_time_s: int = 1
    drain_timeout_s: float = 2.0
    term_timeout_s: float = 5.0
    start_timeout_s: float = 10.0
    backoff_initial_s: float = 0.2
    backoff_max_s: float = 5.0
    stable_after_s: float = 10.0
    poll_interval_s: float = 0.05
    envoy_path: Path | None = None


@dataclass(frozen=True)
class Probe:
    """One look at Envoy's admin API: server state and the CDS/LDS update counters."""

    state: str
    counters: dict[str, int]

    def count(self, xds: str, outcome: str) -> int:
        prefix = "cluster_manager.cds" if xds == "cds" else "listener_manager.lds"
        return self.counters.get(f"{prefix}.update_{outcome}", 0)

    @property
    def ready(self) -> bool:
        return (
            self.state == admin.LIVE
            and self.count("cds", "success") >= 1
            and self.count("lds", "success") >= 1
        )

    def describe(self) -> str:
        return (
            f"/ready={self.state}, "
            f"cds ok={self.count('cds', 'success')} rejected={self.count('cds', 'rejected')}, "
            f"lds ok={self.count('lds', 'success')} rejected={self.count('lds', 'rejected')}"
        )


def downstream_connections(gauges: dict[str, int]) -> int:
    """Open downstream connections on Envoy's listeners, from ACTIVE_CONNECTIONS gauges.

    Counts each listener once (not its per-worker copies) and leaves out the admin
    listener, where the supervisor's own connection sits. (`server.total_connections`
    would be simpler but is only refreshed at each stats flush.)
    """
    return sum(
        value
        for name, value in gauges.items()
        if not name.startswith("listener.admin.") and ".worker_" not in name
    )


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "envoy"


class EnvoySupervisor(StartStop):
    """One supervised Envoy process for one proxy (see the module docstring).

    Use as `async with EnvoySupervisor(...) as envoy: await envoy.wait_ready(10)`, or
    call `start()` and `stop()` (in a `finally`), or run `run()` as a task in a task group.
    """

    def __init__(
        self,
        config: BootstrapOptions,
        run_dir: Path,
        *,
        name: str | None = None,
        options: SupervisorOptions | None = None,
    ) -> None:
        self.config = config
        self.options = options or SupervisorOptions()
        self.name = _safe_name(name or config.proxy.id)
        self.run_dir = Path(run_dir)
        self.bootstrap_path = self.run_dir / f"{self.name}.bootstrap.json"
        self.log_path = self.run_dir / f"{self.name}.envoy.log"
        self._address_path = self.run_dir / f"{self.name}.admin-address"
        self.restarts = 0
        self.last_exit_code: int | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._admin_url: str | None = None
        self._ready_pid: int | None = None
        self._last_probe: Probe | None = None
        self._started_at = 0.0
        self._stopping = False
        self._monitor: asyncio.Task[None] | None = None
        self._watch: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._changed = asyncio.Condition()

    # -- what callers read -------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        """The running Envoy's pid (None before start, between restarts and after stop)."""
        proc = self._proc
        return proc.pid if proc is not None and proc.returncode is None else None

    @property
    def admin_url(self) -> str | None:
        """`http://127.0.0.1:PORT` of the running Envoy's admin API, once it listens."""
        return self._admin_url if self.pid is not None else None

    def is_ready(self) -> bool:
        """True while the running Envoy is LIVE and has accepted CDS and LDS config."""
        pid = self.pid
        return not self._stopping and pid is not None and self._ready_pid == pid

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of Envoy's log file."""
        return tail(self.log_path, lines)

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Write the bootstrap, start Envoy; returns once its admin API listens.

        Raises EnvoyError (with the end of Envoy's log) if Envoy exits or its admin API
        does not come up within `start_timeout_s`; nothing is left running then.
        """
        if self._monitor is not None or self._stopping:
            raise RuntimeError(f"Envoy supervisor {self.name} runs once; it was started")
        try:
            envoy = self.options.envoy_path or find_envoy()
            self._write_bootstrap()
            self._session = aiohttp.ClientSession()
            proc = await self._spawn(envoy)
            url = await self._discover_admin(proc)
            if url is None:
                raise EnvoyError(self._startup_failure(proc))
            self._admin_url = url
            self._watch = asyncio.create_task(self._watch_readiness(proc, url))
            self._monitor = asyncio.create_task(self._monitor_loop(envoy))
            self._monitor.add_done_callback(self._monitor_done)
        except BaseException:
            await self.stop()
            raise

    async def wait_ready(self, timeout: float) -> None:
        """Return once `is_ready()`; EnvoyError saying what is missing after `timeout` s."""
        try:
            async with asyncio.timeout(timeout), self._changed:
                await self._changed.wait_for(lambda: self.is_ready() or self._stopping)
        except TimeoutError:
            raise EnvoyError(self._not_ready_reason(timeout)) from None
        if not self.is_ready():
            raise EnvoyError(f"Envoy {self.name} was stopped before it became ready")

    async def stop(self) -> None:
        """Drain and end Envoy; idempotent; never returns with Envoy still running."""
        self._stopping = True
        proc = self._proc
        try:
            await self._cancel(self._monitor)
            proc = self._proc  # the monitor may have started a new one before it stopped
            await self._notify()
            if proc is not None and proc.returncode is None:
                await self._drain(proc)
                await self._terminate(proc)
        finally:
            proc = self._proc
            if proc is not None and proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
            await self._cancel(self._watch)
            if self._session is not None:
                await self._session.close()
            if proc is not None:
                with contextlib.suppress(ProcessLookupError):
                    await proc.wait()
            self._address_path.unlink(missing_ok=True)

    async def run(self) -> None:
        """Start, then supervise until cancelled; stops Envoy on the way out."""
        try:
            await self.start()
            await asyncio.Event().wait()
        finally:
            await self.stop()

    # -- internals -------------------------------------------------------------------

    def _write_bootstrap(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.bootstrap_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(bootstrap(self.config), indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, self.bootstrap_path)

    def _args(self, envoy: Path) -> list[str]:
        o = self.options
        return [
            str(envoy),
            "-c", str(self.bootstrap_path),
            "--disable-hot-restart",
            "--concurrency", str(self.config.concurrency),
            "--log-level", o.log_level,
            "--drain-time-s", str(o.drain_time_s),
            "--drain-strategy", "immediate",
            "--admin-address-path", str(self._address_path),
            "--file-flush-interval-msec", "1000",  # access logs: Istio's 1 s, not Envoy's 10 s
        ]  # fmt: skip

    async def _spawn(self, envoy: Path, restart: int = 0) -> asyncio.subprocess.Process:
        self._address_path.unlink(missing_ok=True)
        self._admin_url = None
        self._ready_pid = None
        self._last_probe = None
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        with self.log_path.open("ab") as logf:
            logf.write(f"--- plait: starting Envoy {self.name} at {stamp} "
                       f"(restart {restart}) ---\n".encode())  # fmt: skip
            logf.flush()
            try:
                proc = await asyncio.create_subprocess_exec(
                    *self._args(envoy),
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=logf,
                    stderr=logf,
                    start_new_session=True,
                    preexec_fn=die_with_parent_hook(),
                )
            except OSError as exc:
                raise EnvoyError(f"cannot start Envoy ({envoy}): {exc}") from exc
        self._proc = proc
        self._started_at = time.monotonic()
        log.info("Envoy %s started (pid %d)", self.name, proc.pid)
        return proc

    async def _discover_admin(self, proc: asyncio.subprocess.Process) -> str | None:
        """Wait for Envoy to write its admin address; None if it exits or times out first."""
        deadline = time.monotonic() + self.options.start_timeout_s
        while proc.returncode is None and time.monotonic() < deadline:
            with contextlib.suppress(FileNotFoundError):
                m = _ADDRESS.match(self._address_path.read_text().strip())
                if m:
                    return f"http://{m['host']}:{m['port']}"
            await asyncio.sleep(self.options.poll_interval_s)
        return None

    def _startup_failure(self, proc: asyncio.subprocess.Process) -> str:
        if proc.returncode is None:
            what = f"its admin API did not come up within {self.options.start_timeout_s:g}s"
        else:
            what = f"it exited with code {proc.returncode}"
        return (
            f"Envoy {self.name} did not start: {what}; log {self.log_path}, last lines:\n"
            f"{self.log_tail(20)}"
        )

    async def _watch_readiness(self, proc: asyncio.subprocess.Process, url: str) -> None:
        assert self._session is not None
        while proc.returncode is None and not self._stopping:
            try:
                state = await admin.server_state(url, session=self._session)
                counters = await admin.stats(url, READINESS_STATS, session=self._session)
            except EnvoyError as exc:
                log.debug("Envoy %s admin not answering: %s", self.name, exc)
            else:
                self._last_probe = Probe(state, counters)
                if self._last_probe.ready:
                    self._ready_pid = proc.pid
                    log.info("Envoy %s (pid %d) is ready", self.name, proc.pid)
                    await self._notify()
                    return
            await asyncio.sleep(self.options.poll_interval_s)

    async def _monitor_loop(self, envoy: Path) -> None:
        streak = 0
        while True:
            proc = self._proc
            assert proc is not None
            code = await proc.wait()
            if self._stopping:
                return
            self.last_exit_code = code
            uptime = time.monotonic() - self._started_at
            await self._cancel(self._watch)
            await self._notify()
            if uptime >= self.options.stable_after_s:
                streak = 0
            log.warning(
                "Envoy %s (pid %d) exited with code %s after %.1fs; restarting it",
                self.name, proc.pid, code, uptime,
            )  # fmt: skip
            while True:
                delay = backoff_delay(
                    streak, self.options.backoff_initial_s, self.options.backoff_max_s
                )
                streak += 1
                await asyncio.sleep(delay)
                try:
                    new = await self._spawn(envoy, self.restarts + 1)
                except EnvoyError as exc:
                    log.error("%s", exc)
                    continue
                break
            self.restarts += 1
            self._watch = asyncio.create_task(self._restarted(new))

    def _monitor_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "Envoy %s: supervision ended by an error; Envoy will not be restarted",
                self.name,
                exc_info=task.exception(),
            )

    async def _restarted(self, proc: asyncio.subprocess.Process) -> None:
        url = await self._discover_admin(proc)
        if url is None:
            log.warning("Envoy %s (pid %d): admin API did not come up", self.name, proc.pid)
            return
        self._admin_url = url
        await self._watch_readiness(proc, url)

    async def _drain(self, proc: asyncio.subprocess.Process) -> None:
        """Fail health checks, drain listeners gracefully, wait (bounded) for connections."""
        url = self._admin_url
        if url is None or self._session is None:
            return
        try:
            await admin.post(url, "/healthcheck/fail", session=self._session)
            await admin.post(url, "/drain_listeners?graceful", session=self._session)
            deadline = time.monotonic() + self.options.drain_timeout_s
            while proc.returncode is None and time.monotonic() < deadline:
                active = await admin.stats(url, ACTIVE_CONNECTIONS, session=self._session)
                if downstream_connections(active) == 0:
                    return
                await asyncio.sleep(self.options.poll_interval_s)
        except EnvoyError as exc:
            log.debug("Envoy %s: drain cut short: %s", self.name, exc)

    async def _terminate(self, proc: asyncio.subprocess.Process) -> None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(self.options.term_timeout_s):
                await proc.wait()
        except TimeoutError:
            log.warning("Envoy %s (pid %d) ignored SIGTERM; killing it", self.name, proc.pid)
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
        log.info("Envoy %s (pid %d) stopped with code %s", self.name, proc.pid, proc.returncode)

    def _not_ready_reason(self, timeout: float) -> str:
        probe = self._last_probe
        if self._proc is None:
            return f"Envoy {self.name} not ready after {timeout:g}s: it was never started"
        if self.pid is None:
            seen = "Envoy is not running"
            if self.last_exit_code is not None:
                seen += f" (last exit code {self.last_exit_code})"
        elif probe is None:
            seen = "its admin API has not answered"
        else:
            seen = probe.describe()
        if probe is not None and (probe.count("cds", "rejected") or probe.count("lds", "rejected")):
            hint = "Envoy rejected (NACKed) the configuration it was sent"
        else:
            hint = (
                f"is the control plane at {self.config.xds_host}:{self.config.xds_port} "
                "serving this proxy?"
            )
        return (
            f"Envoy {self.name} not ready after {timeout:g}s: {seen}; {hint} "
            f"(restarts: {self.restarts}; log: {self.log_path})"
        )

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    @staticmethod
    async def _cancel(task: asyncio.Task[None] | None) -> None:
        """Cancel `task` and wait for it; a cancellation of the caller still propagates."""
        if task is None:
            return
        task.cancel()
        await asyncio.wait([task])
        if not task.cancelled() and task.exception() is not None:
            log.debug("Envoy supervisor task had failed", exc_info=task.exception())
