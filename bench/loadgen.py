"""The load generator: wrk with a Lua script that sets the request and prints the results.

The same wrk invocation (threads, connections, duration) serves every scenario; only the
URL, the request target and the Host header differ. For an explicit HTTP proxy (the
sidecar's outbound listener) the request line carries the absolute URL
(`GET http://bench-server:8080/ HTTP/1.1`): wrk sends `wrk.path` verbatim, so the
script sets it to the absolute URL. Latency percentiles come from wrk's own histogram
(microsecond resolution) through the script's `done()`, as one JSON line.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.procs import terminate
from plait.agent.process import spawn

_DONE = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,"errors":{"connect":%d,"read":%d,' ..
    '"write":%d,"status":%d,"timeout":%d},"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
    '"mean_us":%.1f,"max_us":%d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
    e.status, e.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.mean, latency.max))
end
"""


@dataclass(frozen=True)
class Request:
    """What wrk sends: to `port` on loopback, with this request target and Host header."""

    port: int
    target: str = "/"  # origin-form, or an absolute URL for an HTTP proxy
    host: str | None = None

    def lua(self) -> str:
        lines = [f"wrk.path = {json.dumps(self.target)}"]
        if self.host is not None:
            lines.append(f'wrk.headers["Host"] = {json.dumps(self.host)}')
        return "\n".join(lines) + "\n" + _DONE


@dataclass(frozen=True)
class Load:
    """A fixed wrk setting shared by every scenario."""

    threads: int
    connections: int
    duration_s: float


async def run_wrk(
    wrk: str,
    req: Request,
    load: Load,
    script_dir: Path,
    *,
    url: str | None = None,
    prefix: tuple[str, ...] = (),
) -> dict[str, Any]:
    """One wrk run; returns its JSON summary plus `rps`. `url` replaces loopback:port
    (a service name inside a pod), `prefix` runs wrk elsewhere (`ip netns exec NS`)."""
    script = script_dir / f"wrk-{req.port}-{abs(hash(req.target)) % 10**6}.lua"
    script.write_text(req.lua())
    proc = await spawn(
        [
            *prefix,
            wrk,
            "-t", str(load.threads),
            "-c", str(load.connections),
            "-d", f"{max(1, round(load.duration_s))}s",
            "--timeout", "5s",
            "-s", str(script),
            url or f"http://127.0.0.1:{req.port}/",
        ],
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        out, _ = await proc.communicate()
    finally:
        with contextlib.suppress(ProcessLookupError):
            await terminate(proc, grace=1)
    text = out.decode(errors="replace")
    for line in text.splitlines():
        if line.startswith("WRKJSON "):
            result: dict[str, Any] = json.loads(line[len("WRKJSON ") :])
            result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
            return result
    raise RuntimeError(f"wrk printed no result (exit {proc.returncode}):\n{text[-2000:]}")


async def probe(req: Request, timeout: float = 5.0) -> tuple[int, str]:
    """One request the way wrk sends it; (status code, body)."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", req.port), timeout)
    try:
        host = req.host or f"127.0.0.1:{req.port}"
        writer.write(
            f"GET {req.target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
        )
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    head, _, body = raw.decode(errors="replace").partition("\r\n\r\n")
    parts = head.split(" ", 2)
    return (int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0), body
