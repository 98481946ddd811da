"""Processes the benchmarks start, and what they read about processes.

Every child is started by plait's own `agent.process.spawn` (its own session, so one
process group to kill, and the parent-death signal): if the bench is killed without a
chance to clean up, the kernel kills its children. Long-running Envoys run under plait's
process supervisor (`agent.procsup`), as sidecars do. The orderly path is `stop()` or
`terminate()` in a `finally`, which every caller uses; Ctrl-C cancels the main task and
runs those `finally` blocks.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from plait.agent import process
from plait.agent.envoy import find_envoy
from plait.agent.process import spawn, tail
from plait.agent.procsup import ProcessSpec, ProcessSupervisor
from plait.controlplane import grpctune

HOST = "127.0.0.1"
_CLK_TCK = os.sysconf("SC_CLK_TCK")
REPO = str(Path(__file__).resolve().parent.parent)  # on PYTHONPATH of spawned benches


def cpu_seconds(pid: int) -> float:
    """CPU time a running process (all its threads) has used; 0.0 if it is gone.

    Read from each thread's /proc schedstat (nanoseconds) rather than /proc/PID/stat,
    whose clock ticks (10 ms) are too coarse for a single config change.
    """
    total = 0
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            total += int((task / "schedstat").read_text().split()[0])
    return total / 1e9


def machine_cpu() -> dict[str, float]:
    """CPU seconds, summed over all cores, from /proc/stat: `busy` (user, nice, system:
    time also charged to some process), `irq` (hard and soft interrupts, charged to no
    process; loopback traffic is processed there) and `steal` (taken by the hypervisor)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return {
        "busy": (user + nice + system) / _CLK_TCK,
        "irq": (irq + softirq) / _CLK_TCK,
        "steal": steal / _CLK_TCK,
    }


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of a running process and all its running descendants."""
    total = cpu_seconds(pid)
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            for child in (task / "children").read_text().split():
                total += tree_cpu_seconds(int(child))
    return total


def children_cpu() -> float:
    """CPU seconds of this process's reaped children (wrk, once it has exited)."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def self_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def memory_kib(pid: int | str = "self") -> dict[str, int]:
    """VmRSS (resident now) and VmHWM (peak resident) of a process, in KiB."""
    out: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
    return out


async def wait_listening(port: int, timeout: float, proc: asyncio.subprocess.Process) -> None:
    """Return once something accepts TCP connections on HOST:port (nothing announces it:
    polled)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.returncode is not None:
            raise RuntimeError(f"process {proc.pid} exited with code {proc.returncode}")
        try:
            _, writer = await asyncio.open_connection(HOST, port)
        except OSError:
            await asyncio.sleep(0.02)
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return
    raise TimeoutError(f"nothing listens on {HOST}:{port} after {timeout:g}s")


async def terminate(proc: asyncio.subprocess.Process, grace: float = 5.0) -> None:
    """SIGTERM to the child's process group, SIGKILL after `grace` seconds; waits for the
    exit (the child must come from `spawn`, the leader of its own group)."""
    await process.terminate(proc, grace)


class StaticEnvoy:
    """An Envoy from a hand-written static config (not a plait proxy), run like plait runs
    its sidecars: one worker thread, no hot restart, same binary, same supervisor."""

    def __init__(
        self,
        name: str,
        config: dict[str, Any],
        port: int,
        run_dir: Path,
        wrapper: tuple[str, ...] = (),
    ) -> None:
        self.name = name
        self.wrapper = wrapper  # argv that execs Envoy (e.g. valgrind), as plait's supervisor
        self.config = config
        self.port = port  # the listener that tells us it is up
        self.config_path = run_dir / f"{name}.static.json"
        self.log_path = run_dir / f"{name}.envoy.log"
        self.admin_path = run_dir / f"{name}.admin-address"
        self._sup: ProcessSupervisor | None = None
        self._timeout = 15.0

    @property
    def pid(self) -> int | None:
        return self._sup.pid if self._sup is not None else None

    @property
    def restarts(self) -> int:
        return self._sup.restarts if self._sup is not None else 0

    @property
    def admin_url(self) -> str | None:
        """`http://HOST:PORT` of the admin API (port 0 in the config: Envoy picks one and
        writes it to `admin_path`), or None before Envoy has written it."""
        try:
            address = self.admin_path.read_text().strip()
        except OSError:
            return None
        return f"http://{address}" if self.pid is not None and address else None

    async def start(self, timeout: float = 15.0) -> None:
        """Start Envoy and wait for its listener. An Envoy that dies is started again by
        the supervisor (with backoff, and said in the log): Envoy 1.40 was seen to die of
        SIGSEGV at start-up (rarely, with nothing in its log), which must not void a
        ten-minute run."""
        await asyncio.to_thread(self._write_config)
        self._timeout = timeout
        spec = ProcessSpec(
            name=f"Envoy {self.name}",
            argv=[
                *self.wrapper,
                str(find_envoy()),
                "-c", str(self.config_path),
                "--concurrency", "1",
                "--disable-hot-restart",
                "--log-level", "warning",
                "--admin-address-path", str(self.admin_path),
                "--file-flush-interval-msec", "1000",  # access logs: as plait runs Envoy
            ],
            log_path=self.log_path,
            log_header=True,
        )  # fmt: skip
        self._sup = ProcessSupervisor(spec, ready=self._listening)
        try:
            await self._sup.start()
            try:
                async with asyncio.timeout(timeout):
                    await self._sup.wait_for(self._sup.is_ready)
            except TimeoutError:
                raise RuntimeError(
                    f"Envoy {self.name} did not listen on {HOST}:{self.port} within "
                    f"{timeout:g}s (restarts: {self._sup.restarts}); log {self.log_path}:\n"
                    f"{tail(self.log_path, 20)}"
                ) from None
        except BaseException:
            await self.stop()
            raise

    def _write_config(self) -> None:
        self.config_path.parent.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(json.dumps(self.config, indent=1))

    async def _listening(self, proc: asyncio.subprocess.Process) -> bool:
        try:
            await wait_listening(self.port, self._timeout, proc)
        except RuntimeError:  # it exited: the supervisor starts the next one
            return False
        return True

    async def stop(self) -> None:
        if self._sup is not None:
            await self._sup.stop(5.0)


PROXY_ENVIRON = {k: v for k, v in os.environ.items() if k != grpctune.VARIABLE}
"""The environment of simulated proxies and real ones' agents: gRPC's defaults. The
control plane's gRPC settings (`plait.controlplane.grpctune`, which the benchmarks' control
plane workers run with, as the control plane does) are its own, neither an agent's nor
the Python simulated proxies' (unless asked: `proxy_environ`)."""


def proxy_environ(proxy_grpc: str) -> dict[str, str]:
    """The simulated proxies' environment: `"default"`, gRPC's defaults (`PROXY_ENVIRON`);
    `"io-manager"`, the control plane's gRPC settings, which halve the simulated proxies'
    CPU on this machine's two cores (a load generator that leaves the control plane more
    of the machine, as proxies on other machines would)."""
    if proxy_grpc == "default":
        return dict(PROXY_ENVIRON)
    if proxy_grpc == "io-manager":
        return PROXY_ENVIRON | {grpctune.VARIABLE: grpctune.EXPERIMENTS}
    raise ValueError(f"proxy_grpc: {proxy_grpc!r} is neither 'default' nor 'io-manager'")


_EXEC_AS_BATCH = (
    "import os, sys; "
    "os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0)); "
    "os.execv(sys.argv[1], sys.argv[1:])"
)


def with_sched(argv: Sequence[str], sched: str) -> list[str]:
    """`argv`, run under the scheduling policy `sched`: "normal" (SCHED_OTHER, as is) or
    "batch" (SCHED_BATCH, set in the child before it execs, so every thread the program
    starts has it).

    A SCHED_BATCH process gets the same fair share of the CPU, but its wake-ups do not
    preempt the thread that is running. The simulated proxies stand in for Envoys on
    other machines; here each push the control plane writes wakes one of them, and
    under SCHED_OTHER it then often preempts the control plane's event loop mid-batch
    (holding the GIL), which proxies elsewhere never do (`docs/benchmarks.md`)."""
    if sched == "normal":
        return list(argv)
    if sched == "batch":
        return [sys.executable, "-c", _EXEC_AS_BATCH, *argv]
    raise ValueError(f"sched: {sched!r} is neither 'batch' nor 'normal'")


async def spawn_python(
    module: str,
    *args: str,
    stdout: int | None = asyncio.subprocess.PIPE,
    environ: Mapping[str, str] | None = None,
    sched: str = "normal",
) -> asyncio.subprocess.Process:
    """`python -m module args…` with this interpreter, dying with this process;
    `environ`: its environment (default this process's), PYTHONPATH added; `sched`: its
    scheduling policy (`with_sched`)."""
    base = os.environ if environ is None else environ
    env = {
        **base,
        "PYTHONPATH": os.pathsep.join(filter(None, [REPO, base.get("PYTHONPATH")])),
    }
    argv = with_sched([sys.executable, "-m", module, *args], sched)
    return await spawn(argv, stdout=stdout, env=env)


def ensure_tool(command: str, package: str | None = None) -> str:
    """The path of `command`; installs its Debian package (`package`, default the same
    name) when it is missing (needs root)."""
    found = shutil.which(command)
    if found is not None:
        return found
    package = package or command
    print(
        f"{command} not found: installing the Debian package {package} with apt-get",
        file=sys.stderr,
        flush=True,
    )
    install = ["apt-get", "install", "-y", "-qq", package]
    done = subprocess.run(install, capture_output=True, text=True, check=False)
    if done.returncode != 0:  # a stale package index: refresh it once
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True, check=False)
        done = subprocess.run(install, capture_output=True, text=True, check=False)
    found = shutil.which(command)
    if found is None:
        raise RuntimeError(
            f"cannot install {command} (`{' '.join(install)}`):\n{done.stderr[-2000:]}"
        )
    return found


def ensure_wrk() -> str:
    """The path of `wrk` (installed when missing, `ensure_tool`)."""
    return ensure_tool("wrk")
