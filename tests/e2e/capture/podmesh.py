"""Helpers for the `plait up --transparent` e2e tests: a mesh directory run in pods for a
module, a pod's network namespace by replica, and a proxy's Envoy stats."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from meshkit import Mesh, copy_mesh, processes_under


@contextmanager
def transparent_mesh(
    src: Path, dst: Path, prepare: Callable[[Path], object] | None = None
) -> Iterator[Mesh]:
    """`plait up --transparent` on a copy of `src` at `dst`; down afterwards, checking
    that no process and no pod network is left. `prepare(root)`, if given, runs on the
    copy first."""
    root = copy_mesh(src, dst)
    if prepare is not None:
        prepare(root)
    mesh = Mesh(root)
    result = mesh.up("--transparent")
    try:
        assert result.returncode == 0, (
            f"plait up --transparent failed:\n{result.stdout}\n{result.stderr}\n"
            f"{mesh.diagnostics()}"
        )
        yield mesh
    finally:
        down = mesh.down()
        assert down.returncode == 0, down.stderr
        assert not processes_under(root), processes_under(root)
        assert not (root / ".plait" / "podnet.json").exists()


def diagnose_on_failure(request: pytest.FixtureRequest, fixture: str) -> None:
    """After a failed test that used `fixture` (a Mesh), print its logs and config dumps."""
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed and fixture in request.fixturenames:
        print(request.getfixturevalue(fixture).diagnostics())


def pod_netns(root: Path, instance: str) -> str:
    state = json.loads((root / ".plait" / "podnet.json").read_text())
    names = [e["name"] for e in state["made"] if e["kind"] == "netns"]
    return str(next(n for n in names if n.endswith(f"-default-{instance}")))


def stats(mesh: Mesh, workload: str, pattern: str) -> dict[str, int]:
    admin = next(p["admin"] for p in mesh.status_proxies() if p["workload"] == workload)
    url = f"http://{admin}/stats?format=json&filter={pattern}"
    with urllib.request.urlopen(url, timeout=5) as resp:
        data = json.loads(resp.read())
    return {s["name"]: s.get("value", 0) for s in data["stats"] if "value" in s}
