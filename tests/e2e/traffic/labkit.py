"""The traffic lab: one running mesh per test module, config applied per test.

`Lab.apply(name, yaml)` writes a file into the running mesh directory and returns once the
control plane has published it and every proxy has ACKed that generation, so a test's
traffic always meets its config. The tests play the `client` app: requests go through the
client's sidecar, as the app's own calls would (`HTTP_PROXY`).
"""

from __future__ import annotations

import asyncio
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from meshkit import Mesh, copy_mesh, eventually, get_json, processes_under

LAB = Path(__file__).parent / "lab"


@dataclass
class Reply:
    status: int
    headers: Mapping[str, str]
    body: Any  # the echo document, or the raw text when the answer is not JSON
    seconds: float

    @property
    def replica(self) -> str | None:
        return self.body.get("replica") if isinstance(self.body, dict) else None


class Lab:
    def __init__(self, mesh: Mesh) -> None:
        self.mesh = mesh

    def diagnostics(self) -> str:
        return self.mesh.diagnostics()

    # --- config -----------------------------------------------------------------------
    def _publish(self, change: Any) -> int:
        before = self.mesh.cp_status()["controlPlane"]["generation"]
        change()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            cp = self.mesh.cp_status()
            generation = int(cp["controlPlane"]["generation"])
            if generation > before and self.mesh.all_synced(generation) and self._drained():
                return generation
            time.sleep(0.03)
        raise AssertionError(f"config not ACKed by every proxy in 15 s:\n{self.mesh.cp_status()}")

    def _drained(self) -> bool:
        """No proxy still serves connections on a filter chain a listener update replaced
        (they close within Envoy's drain time): until then, an old chain's filters (RBAC,
        jwt_authn, the mTLS mode) still answer requests on connections opened before."""
        for p in self.mesh.status_proxies():
            stats = get_json(f"http://{p['admin']}/stats?format=json&filter=draining")["stats"]
            if any(s.get("value") for s in stats):
                return False
        return True

    def apply(self, name: str, text: str) -> int:
        """Write `NAME.yaml` and wait until every proxy ACKed it and no connection is left
        on a replaced filter chain; returns the generation."""
        path = self.mesh.root / f"{name}.yaml"
        return self._publish(lambda: path.write_text(text))

    def remove(self, name: str) -> None:
        path = self.mesh.root / f"{name}.yaml"
        if path.exists():
            self._publish(path.unlink)

    @contextmanager
    def config(self, name: str, text: str) -> Iterator[int]:
        """Config in force for a block, removed after it even when the block fails."""
        generation = self.apply(name, text)
        try:
            yield generation
        finally:
            self.remove(name)

    def errors(self) -> list[dict[str, Any]]:
        return list(self.mesh.cp_status()["errors"])

    def gateway_port(self, server_port: int) -> int | None:
        """The host port serving a Gateway server port (`gatewayPorts` in `plait status -o
        json`), None while it has none."""
        port = self.mesh.status()["gatewayPorts"].get(str(server_port))
        return int(port) if port is not None else None

    # --- the mesh's processes ---------------------------------------------------------
    def proxy(self, workload: str, index: int = 0) -> dict[str, Any]:
        found = sorted(
            (p for p in self.mesh.status_proxies() if p.get("workload") == workload),
            key=lambda p: str(p["name"]),
        )
        return found[index]

    def replicas(self, workload: str) -> list[dict[str, Any]]:
        return [p for p in self.mesh.status_proxies() if p.get("workload") == workload]

    def upstream_counts(self, workload: str) -> dict[str, dict[str, int]]:
        """Each replica's own request counts per path (read from the app directly)."""
        return {
            str(p["name"]): get_json(f"http://{p['app']}/_stats")["counts"]
            for p in self.replicas(workload)
        }

    def reset_counts(self, *workloads: str) -> None:
        for w in workloads:
            for p in self.replicas(w):
                req = urllib.request.Request(f"http://{p['app']}/_reset", method="POST")
                urllib.request.urlopen(req, timeout=3).read()

    def envoy_stats(self, workload: str, index: int = 0) -> dict[str, int]:
        """Counters and gauges of a proxy's Envoy (`/stats?format=json`)."""
        admin = self.proxy(workload, index)["admin"]
        stats = get_json(f"http://{admin}/stats?format=json")["stats"]
        return {s["name"]: s["value"] for s in stats if "value" in s}

    # --- traffic ----------------------------------------------------------------------
    @property
    def client_proxy(self) -> str:
        return f"http://{self.proxy('client')['outbound']}"

    async def send(
        self,
        url: str,
        n: int = 1,
        *,
        method: str = "GET",
        headers: Mapping[str, str] | None = None,
        concurrency: int = 8,
        via: str | None = None,
        timeout: float = 10.0,
        follow_redirects: bool = True,
    ) -> list[Reply]:
        """n requests from the client app (through its sidecar), `concurrency` at a time.

        `via="gateway"` sends them to the ingress gateway instead (url is then a path plus
        a `Host`); any other `via` names the workload whose sidecar sends them.
        """
        proxy = None
        if via == "gateway":
            url = self.mesh.gateway + url
        else:
            proxy = f"http://{self.proxy(via or 'client')['outbound']}"
        sem = asyncio.Semaphore(concurrency)
        out: list[Reply] = []
        async with aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=timeout),
            connector=aiohttp.TCPConnector(limit=concurrency),
        ) as session:

            async def one() -> None:
                async with sem:
                    start = time.monotonic()
                    async with session.request(
                        method,
                        url,
                        headers=dict(headers or {}),
                        proxy=proxy,
                        allow_redirects=follow_redirects,
                    ) as r:
                        text = await r.text()
                        body: Any = text
                        if r.content_type == "application/json":
                            with suppress(ValueError):
                                body = await r.json(content_type=None)
                        out.append(Reply(r.status, dict(r.headers), body, time.monotonic() - start))

            await asyncio.gather(*(one() for _ in range(n)))
        return out


@contextmanager
def running_lab(request: pytest.FixtureRequest, where: Path, *up_args: str) -> Iterator[Lab]:
    """A lab mesh under `where` with the requesting module's `LAB_FILES` added, started
    with `plait up ... *up_args`; stopped after, with a check that no process is left."""
    root = copy_mesh(LAB, where / "lab")
    for name, text in getattr(request.module, "LAB_FILES", {}).items():
        (root / name).write_text(text)
    mesh = Mesh(root)
    result = mesh.up(*up_args)
    try:
        assert result.returncode == 0, (
            f"plait up failed:\n{result.stdout}\n{result.stderr}\n{mesh.diagnostics()}"
        )
        yield Lab(mesh)
    finally:
        down = mesh.down()
        left = processes_under(root)
        assert down.returncode == 0, down.stderr
        assert not left, f"processes left behind after plait down: {left}"


def replicas_of(replies: list[Reply]) -> Counter[str]:
    return Counter(r.replica or f"HTTP {r.status}" for r in replies)


def statuses(replies: list[Reply]) -> Counter[int]:
    return Counter(r.status for r in replies)


def within(observed: float, expected: float, tolerance: float) -> bool:
    """|observed - expected| <= tolerance (absolute, in the same unit)."""
    return abs(observed - expected) <= tolerance


__all__ = [
    "LAB",
    "Lab",
    "Reply",
    "eventually",
    "replicas_of",
    "running_lab",
    "statuses",
    "within",
]
