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
Everything runs on one event loop. The process itself (spawn in its own session, restart
with backoff, one kill scope, a stop that cannot race a restart) is
`agent.procsup.ProcessSupervisor`, shared with app replicas and the benchmarks; this
module adds what is Envoy's: the bootstrap file, the readiness probe and the drain. The
probe, run by the process supervisor's task group for each Envoy process, learns the
admin address (Envoy writes it to `--admin-address-path`, so admin port 0 works) and
polls the admin API until the process is ready (Envoy pushes no readiness); every change
wakes `wait_ready`. Envoy's stdout and stderr go to `<run_dir>/<name>.envoy.log`
(appended across restarts); stderr rather than `--log-path`, because Envoy buffers
`--log-path` writes and loses them when it is killed, which is when the log is needed most.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from plait.agent import admin
from plait.agent.bootstrap import BootstrapOptions, bootstrap
from plait.agent.envoy import find_envoy
from plait.agent.lifecycle import StartStop
from plait.agent.process import tail
from plait.agent.procsup import ProcessSpec, ProcessSupervisor, RestartPolicy
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
    wrapper: tuple[str, ...] = ()
    """argv that runs Envoy elsewhere and execs it (in a pod: `ip netns exec NS setpriv
    …`), so the supervised pid is still Envoy's."""


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
        self._procs: ProcessSupervisor | None = None
        self._admin_url: str | None = None
        self._admin_pid: int | None = None
        self._last_probe: Probe | None = None
        self._stopping = False
        self._session: aiohttp.ClientSession | None = None
        self._changed = asyncio.Condition()  # shared with the process supervisor

    # -- what callers read -------------------------------------------------------------

    @property
    def restarts(self) -> int:
        """How many times Envoy was started again after it exited."""
        return self._procs.restarts if self._procs is not None else 0

    @property
    def last_exit_code(self) -> int | None:
        return self._procs.last_exit_code if self._procs is not None else None

    @property
    def pid(self) -> int | None:
        """The running Envoy's pid (None before start, between restarts and after stop)."""
        return self._procs.pid if self._procs is not None else None

    @property
    def admin_url(self) -> str | None:
        """`http://127.0.0.1:PORT` of the running Envoy's admin API, once it listens."""
        pid = self.pid
        return self._admin_url if pid is not None and pid == self._admin_pid else None

    def is_ready(self) -> bool:
        """True while the running Envoy is LIVE and has accepted CDS and LDS config."""
        return not self._stopping and self._procs is not None and self._procs.is_ready()

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of Envoy's log file."""
        return tail(self.log_path, lines)

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Write the bootstrap, start Envoy; returns once its admin API listens.

        Raises EnvoyError (with the end of Envoy's log) if Envoy exits or its admin API
        does not come up within `start_timeout_s`; nothing is left running then.
        """
        if self._procs is not None or self._stopping:
            raise RuntimeError(f"Envoy supervisor {self.name} runs once; it was started")
        try:
            envoy = self.options.envoy_path or find_envoy()
            self._write_bootstrap()
            self._session = aiohttp.ClientSession()
            o = self.options
            spec = ProcessSpec(
                name=f"Envoy {self.name}",
                argv=self._args(envoy),
                log_path=self.log_path,
                log_header=True,
                restart=RestartPolicy(
                    backoff_initial_s=o.backoff_initial_s,
                    backoff_max_s=o.backoff_max_s,
                    stable_after_s=o.stable_after_s,
                ),
            )
            self._procs = ProcessSupervisor(
                spec, ready=self._probe, before_spawn=self._before_spawn, changed=self._changed
            )
            try:
                await self._procs.start()
            except OSError as exc:
                raise EnvoyError(f"cannot start Envoy ({envoy}): {exc}") from exc
            first = self._procs.process
            assert first is not None
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(o.start_timeout_s):
                    await self._procs.wait_for(
                        lambda: first.returncode is not None or self._admin_pid == first.pid
                    )
            if self._admin_pid != first.pid or first.returncode is not None:
                raise EnvoyError(self._startup_failure(first))
        except BaseException:
            await self.stop()
            raise

    async def wait_ready(self, timeout: float) -> None:
        """Return once `is_ready()`; EnvoyError saying what is missing after `timeout` s."""

        def settled() -> bool:
            failed = self._procs is not None and self._procs.failure is not None
            return self.is_ready() or self._stopping or failed

        try:
            async with asyncio.timeout(timeout), self._changed:
                await self._changed.wait_for(settled)
        except TimeoutError:
            raise EnvoyError(self._not_ready_reason(timeout)) from None
        if not self.is_ready():
            raise EnvoyError(f"Envoy {self.name} was stopped before it became ready")

    async def stop(self) -> None:
        """Drain and end Envoy; idempotent; never returns with Envoy still running."""
        self._stopping = True
        try:
            async with self._changed:
                self._changed.notify_all()
            if self._procs is not None:
                await self._procs.stop(self.options.term_timeout_s, before_term=self._drain)
        finally:
            if self._session is not None:
                await self._session.close()
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
            *o.wrapper,
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

    def _before_spawn(self, restart: int) -> None:
        """A new Envoy writes its own admin address: forget the old one."""
        self._address_path.unlink(missing_ok=True)
        self._admin_url = None
        self._admin_pid = None
        self._last_probe = None

    async def _probe(self, proc: asyncio.subprocess.Process) -> bool:
        """Readiness of one Envoy process: its admin address, then LIVE with CDS and LDS."""
        url = await self._discover_admin(proc)
        if url is None:
            if proc.returncode is None:
                log.warning("Envoy %s (pid %d): admin API did not come up", self.name, proc.pid)
            return False
        self._admin_url, self._admin_pid = url, proc.pid
        assert self._procs is not None
        await self._procs.notify()
        return await self._watch_readiness(proc, url)

    async def _discover_admin(self, proc: asyncio.subprocess.Process) -> str | None:
        """Wait for Envoy to write its admin address; None if it exits or times out first.

        Envoy gives no other signal that it listens (`--admin-address-path` is written once
        the admin listener is bound), so the file is polled.
        """
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

    async def _watch_readiness(self, proc: asyncio.subprocess.Process, url: str) -> bool:
        """Poll the admin API until this Envoy is ready (Envoy pushes no readiness)."""
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
                    return True
            await asyncio.sleep(self.options.poll_interval_s)
        return False

    async def _drain(self, proc: asyncio.subprocess.Process) -> None:
        """Fail health checks, drain listeners gracefully, wait (bounded) for connections."""
        url = self.admin_url
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

    def _not_ready_reason(self, timeout: float) -> str:
        probe = self._last_probe
        if self._procs is not None and self._procs.failure is not None:
            return f"Envoy {self.name} not ready: its supervision failed: {self._procs.failure!r}"
        if self._procs is None or self._procs.process is None:
            return f"Envoy {self.name} not ready after {timeout:g}s: it was never started"
        if self.pid is None:
            seen = "Envoy is not running"
            if self.last_exit_code is not None:
                seen += f" (last exit code {self.last_exit_code})"
            if self._procs is not None and self._procs.last_error is not None:
                seen += f" (restart failing: {self._procs.last_error})"
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
