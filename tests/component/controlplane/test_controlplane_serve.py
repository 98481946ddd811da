"""The control plane process's loop (`controlplane.main.run`) on real files and a real
status port: edits flow from the sources through the pipeline to `/status`, and a bad
workload registry never withdraws the endpoints of the last good one."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from plait.controlplane.main import ControlPlaneOptions, run
from plait.local.ports import free_port
from plait.model.labels import Labels
from plait.model.registry import PortMap, WorkloadInstance
from plait.sources.workloads import registry_path, write_registry

SERVICE = """apiVersion: v1
kind: Service
metadata: {{name: {name}}}
spec:
  selector: {{app: a}}
  ports: [{{name: http, port: 80}}]
"""


def instance(n: int) -> WorkloadInstance:
    labels = Labels.of({"app": "a"})
    return WorkloadInstance(
        f"a-{n}", "a", "default", labels, "default", "127.0.0.1", PortMap.all_to(20000 + n)
    )


@contextlib.asynccontextmanager
async def controlplane(root: Path) -> AsyncIterator[str]:
    """The control plane on free ports (plaintext, no CA); yields its status URL."""
    opts = ControlPlaneOptions(root, xds_port=free_port(), debug_port=free_port())
    task = asyncio.create_task(run(opts))
    try:
        yield f"http://127.0.0.1:{opts.debug_port}/status"
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)


async def until(url: str, check: Callable[[dict[str, Any]], bool], what: str) -> dict[str, Any]:
    """Poll `/status` until `check` holds (10 s deadline)."""
    last: dict[str, Any] = {}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    async with aiohttp.ClientSession() as session:
        while True:
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(url) as resp:
                    last = await resp.json()
                    if check(last):
                        return last
            assert loop.time() < deadline, f"timed out waiting for {what}; last status: {last}"
            await asyncio.sleep(0.05)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "a.yaml").write_text(SERVICE.format(name="a"))
    write_registry(tmp_path, [instance(0)])
    return tmp_path


def instances(status: dict[str, Any]) -> list[str]:
    return list(status["controlPlane"]["instances"])


async def test_config_and_registry_edits_reach_the_status(root: Path) -> None:
    async with controlplane(root) as url:
        first = await until(url, lambda s: instances(s) == ["a-0"], "the first registry")
        (root / "b.yaml").write_text(SERVICE.format(name="b") + "  bogus: 1\n")
        await until(
            url, lambda s: any(w["file"].endswith("b.yaml") for w in s["warnings"]), "b's warning"
        )
        write_registry(root, [instance(0), instance(1)])
        later = await until(url, lambda s: instances(s) == ["a-0", "a-1"], "the new registry")
        assert later["controlPlane"]["generation"] > first["controlPlane"]["generation"]


@pytest.mark.parametrize(
    "text",
    ['{"instances": [{"name": "a-0", "workl', '{"instances": [{"name": "a-0"}]}', ""],
    ids=["half-written", "incomplete", "empty"],
)
async def test_a_bad_registry_keeps_the_last_good_one(root: Path, text: str) -> None:
    """Regression: an unreadable registry was read as empty, withdrawing every endpoint."""
    async with controlplane(root) as url:
        await until(url, lambda s: instances(s) == ["a-0"], "the first registry")
        registry_path(root).write_text(text)
        bad = await until(
            url, lambda s: "workloads" in (s.get("sourceErrors") or {}), "the registry's error"
        )
        assert "workloads.json" in bad["sourceErrors"]["workloads"]
        assert instances(bad) == ["a-0"]  # the last good registry stays in force
        write_registry(root, [instance(0), instance(1)])
        good = await until(url, lambda s: instances(s) == ["a-0", "a-1"], "the fixed registry")
        assert good["sourceErrors"] == {}
