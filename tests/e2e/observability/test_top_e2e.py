"""`plait top` on the running lab mesh, driven in a terminal: a pseudo-terminal whose
slave is the command's controlling TTY (so rich draws its live view), steady traffic
client → echo with a quarter of the answers 503 (retries off, so echo's sidecars see
exactly what the client sent), Ctrl-C typed into the terminal; and `--once -o json`."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import re
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from labkit import Lab, eventually

RATE = 25.0  # requests per second
FAIL_EVERY = 4  # every 4th request answers 503: 75% success
NO_RETRIES = """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo}
spec:
  hosts: [echo]
  http:
    - route: [{destination: {host: echo}}]
      retries: {attempts: 0}
"""
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]")
ECHO_ROW = re.compile(r"[│|]\s*echo\s*[│|]\s*default\s*[│|]\s*([\d.]+)\s*[│|]\s*([\d.]+)%")


@dataclass
class Steady:
    """RATE requests per second from the client app; counts what it sent and got."""

    proxy: str
    sent: int = 0
    codes: dict[int, int] = field(default_factory=dict)

    async def run(self) -> None:
        start = time.monotonic()
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
            while True:
                self.sent += 1
                fail = self.sent % FAIL_EVERY == 0
                headers = {"x-echo-status": "503"} if fail else {}
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with session.get(
                        "http://echo:8080/top", headers=headers, proxy=self.proxy
                    ) as r:
                        await r.read()
                        self.codes[r.status] = self.codes.get(r.status, 0) + 1
                await asyncio.sleep(max(0.0, start + self.sent / RATE - time.monotonic()))


def _echo_counted(lab: Lab) -> bool:
    """Some istio_requests_total of echo's sidecars has counted a request."""
    for proxy in lab.replicas("echo-v1") + lab.replicas("echo-v2"):
        with urllib.request.urlopen(proxy["metrics"], timeout=3) as resp:
            text = resp.read().decode()
        if any(
            line.startswith("istio_requests_total{") and not line.rstrip().endswith(" 0")
            for line in text.splitlines()
        ):
            return True
    return False


@contextlib.asynccontextmanager
async def traffic(lab: Lab) -> AsyncIterator[Steady]:
    with lab.config("top-no-retries", NO_RETRIES):
        steady = Steady(lab.client_proxy)
        task = asyncio.create_task(steady.run())
        try:
            # the first requests are in echo's metrics (its access log was flushed), so
            # the window `plait top` measures sees steady traffic
            await eventually(lambda: _echo_counted(lab), 15, "echo to count /top requests")
            yield steady
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _interactive() -> None:
    """In the child, before exec: the terminal becomes its controlling TTY, and SIGINT
    gets its default action back, as in a login shell's terminal. pytest may run with
    SIGINT ignored (started in the background by a non-interactive shell, as CI may do),
    and an ignored signal stays ignored across exec: Ctrl-C would then do nothing."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Terminal:
    """`plait ARGS` on a pseudo-terminal of 160×50; the screen's bytes collected."""

    def __init__(self, *args: str) -> None:
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 160, 0, 0))
        env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "160", "LINES": "50"}
        env.pop("NO_COLOR", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "plait", *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env={**env, "PYTHONIOENCODING": "utf-8"},
            start_new_session=True,  # its own session, with this terminal as controlling TTY
            preexec_fn=_interactive,  # noqa: PLW1509
        )
        os.close(slave)
        self.master = master
        self.raw = bytearray()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # EIO: the slave side closed
                return
            if not chunk:
                return
            self.raw.extend(chunk)

    @property
    def screen(self) -> str:
        return ANSI.sub("", bytes(self.raw).decode("utf-8", errors="replace"))

    def type(self, data: bytes) -> None:
        os.write(self.master, data)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self.reader.join(5)
        os.close(self.master)


def echo_frames(screen: str) -> list[tuple[float, float]]:
    """(rps, success %) of echo in every frame drawn so far."""
    return [(float(m[1]), float(m[2])) for m in ECHO_ROW.finditer(screen)]


def alive_top(root: Path) -> list[int]:
    """Processes running `plait top` on this mesh."""
    found = []
    for pid_dir in Path("/proc").iterdir():
        if not pid_dir.name.isdigit():
            continue
        try:
            cmd = (pid_dir / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            zombie = "\nState:\tZ" in (pid_dir / "status").read_text()
        except OSError:
            continue
        if not zombie and " top " in cmd and str(root) in cmd and "plait" in cmd:
            found.append(int(pid_dir.name))
    return found


async def test_top_shows_live_figures_in_a_terminal_and_stops_on_ctrl_c(lab: Lab) -> None:
    root = lab.mesh.root
    async with traffic(lab) as steady:
        term = Terminal("top", str(root), "--interval", "1s")
        try:

            def failing_frame() -> bool:
                return any(rps > 0 and rate < 100 for rps, rate in echo_frames(term.screen))

            await eventually(failing_frame, 20, f"a frame with echo failing:\n{term.screen}", 0.1)
            assert term.proc.poll() is None, term.screen
            frames = echo_frames(term.screen)
            assert len(frames) >= 1 and "SUCCESS" in term.screen and "P99" in term.screen
            term.type(b"\x03")  # Ctrl-C, through the terminal's line discipline: SIGINT
            code = await asyncio.to_thread(term.proc.wait, 10)
        finally:
            term.close()
    assert code == 0, term.screen
    assert "Traceback" not in term.screen
    assert steady.codes.get(503) and steady.codes.get(200)
    assert not alive_top(root)


async def test_once_json_reports_what_was_sent(lab: Lab) -> None:
    root = lab.mesh.root
    async with traffic(lab) as steady:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "plait",
            "top",
            str(root),
            "--once",
            "-o",
            "json",
            "--interval",
            "4s",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, errout = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, errout.decode()
    data = json.loads(out)
    echo = next(s for s in data["services"] if s["service"] == "echo")
    assert data["windowSeconds"] >= 4
    assert abs(echo["rps"] - RATE) <= 0.3 * RATE, (echo, steady.codes)
    assert abs(echo["successRate"] - (1 - 1 / FAIL_EVERY)) <= 0.1, echo
    assert echo["p50Ms"] is not None and echo["p99Ms"] >= echo["p50Ms"]
    edge = next(e for e in data["edges"] if e["service"] == "echo")
    assert (edge["source"], edge["sourceNamespace"]) == ("client", "default")
    assert edge["requests"] == echo["requests"]
