"""Helpers for mesh e2e tests: run `plait` for real on a copy of a mesh directory.

Everything here drives the real CLI (`python -m plait ...`), real Envoy and real app
processes; waits poll with a deadline; `processes_under` finds anything left behind.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

REPO = Path(__file__).resolve().parents[2]
SHOP = REPO / "examples" / "shop"


def plait(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "plait", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "200"},
    )


def copy_mesh(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".plait", "__pycache__"))
    return dst


def processes_under(root: Path) -> list[str]:
    """Live processes whose command line or working directory is inside root."""
    found = []
    needle = str(root.resolve())
    for pid_dir in Path("/proc").iterdir():
        if not pid_dir.name.isdigit() or int(pid_dir.name) == os.getpid():
            continue
        try:
            status = (pid_dir / "status").read_text()
            if "\nState:\tZ" in status:
                continue  # a zombie holds nothing; this container's init may not reap it
            cmd = (pid_dir / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(pid_dir / "cwd")
        except (OSError, ValueError):
            continue
        if needle in cmd or cwd.startswith(needle):
            found.append(f"{pid_dir.name}: {cmd.strip()}")
    return found


def envoy_pid(root: Path, instance: str) -> int | None:
    """The pid of the live Envoy whose bootstrap belongs to this proxy instance, if any."""
    marker = f"{instance}.bootstrap.json"
    for pid_dir in Path("/proc").iterdir():
        if not pid_dir.name.isdigit():
            continue
        try:
            cmd = (pid_dir / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            if "\nState:\tZ" in (pid_dir / "status").read_text():
                continue
        except OSError:
            continue
        if marker in cmd and str(root.resolve()) in cmd and "envoy" in cmd.split(" ", 1)[0]:
            return int(pid_dir.name)
    return None


def get_json(url: str, timeout: float = 3.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.loads(resp.read())


async def eventually(
    check: Callable[[], bool | Awaitable[bool]], timeout: float, what: str, interval: float = 0.02
) -> float:
    """Poll until check() is true; returns the seconds it took, or raises AssertionError."""
    start = time.monotonic()
    while True:
        try:
            result = check()
            if not isinstance(result, bool):
                result = await result
            if result:
                return time.monotonic() - start
        except (OSError, ValueError, aiohttp.ClientError, TimeoutError):
            pass
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not within {timeout}s: {what}")
        await asyncio.sleep(interval)


@dataclass
class Mesh:
    """A mesh started with `plait up DIR --detach`."""

    root: Path
    gateway: str = ""

    def up(self, *extra: str) -> subprocess.CompletedProcess[str]:
        result = plait("up", str(self.root), "--detach", "--gateway-port", "0", *extra)
        for line in result.stdout.splitlines():
            if line.startswith("gateway: http"):
                self.gateway = line.split(" ", 1)[1].strip()
        return result

    def down(self) -> subprocess.CompletedProcess[str]:
        return plait("down", str(self.root))

    def status(self) -> dict[str, Any]:
        result = plait("status", str(self.root), "-o", "json")
        assert result.returncode == 0, result.stderr
        data: dict[str, Any] = json.loads(result.stdout)
        return data

    def cp_status(self) -> dict[str, Any]:
        """The control plane's own view (fast: no CLI process)."""
        state = json.loads((self.root / ".plait" / "state.json").read_text())
        data: dict[str, Any] = get_json(state["status_url"], timeout=1.0)
        return data

    def all_synced(self, min_generation: int = 0) -> bool:
        """Every proxy `plait up` runs has ACKed `min_generation` (other xDS clients a test
        connected itself do not count)."""
        ours = {p["name"] for p in self.status_proxies()}
        proxies = [p for p in self.cp_status()["proxies"] if p["name"] in ours]
        return len(proxies) >= len(ours) and all(
            p["connected"]
            and all(v in ("SYNCED", "NOT SENT") for v in p["sync"].values())
            and (p.get("generation") or 0) >= min_generation
            for p in proxies
        )

    def status_proxies(self) -> list[dict[str, Any]]:
        state = json.loads((self.root / ".plait" / "state.json").read_text())
        proxies: list[dict[str, Any]] = state["proxies"]
        return proxies

    def diagnostics(self) -> str:
        """Envoy logs (tails) and config dumps of every proxy, the control-plane log."""
        out = []
        run = self.root / ".plait"
        for log in sorted(run.glob("envoy/*.envoy.log")) + [
            run / "controlplane.log",
            run / "up.log",
        ]:
            if log.exists():
                lines = log.read_text(errors="replace").splitlines()[-40:]
                out.append(f"----- {log.name} (last {len(lines)} lines)\n" + "\n".join(lines))
        try:
            for p in self.status_proxies():
                dump = get_json(f"http://{p['admin']}/config_dump", timeout=2.0)
                for cfg in dump.get("configs", []):
                    cfg.get("bootstrap", {}).get("node", {}).pop("extensions", None)
                out.append(f"----- config_dump {p['name']}\n{json.dumps(dump)[:20000]}")
        except (OSError, ValueError, KeyError) as exc:
            out.append(f"(no config dumps: {exc})")
        return "\n".join(out)


@dataclass
class Load:
    """Continuous traffic from `workers` concurrent loops; records every outcome."""

    url: str
    workers: int = 4
    proxy: str | None = None  # an HTTP proxy (a sidecar's outbound listener), as apps use
    codes: Counter[str] = field(default_factory=Counter)
    failures: list[tuple[float, str]] = field(default_factory=list)
    successes: list[float] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def _loop(self, session: aiohttp.ClientSession) -> None:
        while not self._stop.is_set():
            t = time.monotonic()
            try:
                async with session.get(
                    self.url, proxy=self.proxy, timeout=aiohttp.ClientTimeout(total=10)
                ) as r:
                    await r.read()
                    self.codes[str(r.status)] += 1
                    if r.status == 200:
                        self.successes.append(t)
                    else:
                        self.failures.append((t, f"HTTP {r.status}"))
            except (aiohttp.ClientError, TimeoutError) as exc:
                self.codes[type(exc).__name__] += 1
                self.failures.append((t, repr(exc)))
                await asyncio.sleep(0.01)

    async def __aenter__(self) -> Load:
        self._session = aiohttp.ClientSession()
        self._tasks = [asyncio.create_task(self._loop(self._session)) for _ in range(self.workers)]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._session.close()

    @property
    def total(self) -> int:
        return sum(self.codes.values())

    def count_since(self, t: float) -> int:
        return sum(1 for s in self.successes if s >= t)
