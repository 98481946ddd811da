"""`plait up`'s background work survives its failures and shows them (no process runs
here: the failing steps are stand-ins for a CA that refuses and a disk that errs)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from plait.errors import WorkloadCertificateError
from plait.local import runner
from plait.local.runner import LocalMesh
from plait.local.statefile import read_state, write_state
from plait.local.upoptions import UpOptions

DEPLOYMENT = """apiVersion: apps/v1
kind: Deployment
metadata: {{name: a}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: a}}}}
  template:
    metadata: {{labels: {{app: a}}}}
    spec:
      containers: [{{name: a, command: [python3, -m, http.server]}}]
"""


@pytest.fixture
def mesh(tmp_path: Path) -> LocalMesh:
    (tmp_path / "a.yaml").write_text(DEPLOYMENT.format(replicas=1))
    return LocalMesh(UpOptions(tmp_path), progress=lambda _line: None)


async def test_a_reconcile_that_fails_is_reported_and_later_edits_still_apply(
    mesh: LocalMesh, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: a scale-up whose new sidecar got no certificate ended the watch task
    silently; later Deployment edits were ignored while `plait up` still said ready."""
    calls: list[int] = []
    lines: list[str] = []

    async def reconcile(*_args: object) -> None:
        calls.append(len(calls))
        if len(calls) == 1:
            raise WorkloadCertificateError("the CA refused the CSR of a-1")

    monkeypatch.setattr(mesh, "reconcile", reconcile)
    monkeypatch.setattr(mesh, "progress", lines.append)
    mesh.state.phase = "ready"
    write_state(mesh.root, mesh.state)
    stop = asyncio.Event()
    task = asyncio.create_task(mesh.watch(stop))
    try:
        async with asyncio.timeout(10):
            n = 0
            while len(calls) < 2:  # edits until the watch has reconciled twice
                n += 1
                (mesh.root / "a.yaml").write_text(DEPLOYMENT.format(replicas=1 + n % 3))
                await asyncio.sleep(0.2)
                assert not task.done(), f"the watch task ended: {task}"
        assert any("the CA refused the CSR of a-1" in line for line in lines), lines
        # the failure was visible in `plait status` meanwhile, and is gone once one worked
        assert read_state(mesh.root).problems == {}
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def test_a_failing_reconcile_is_shown_in_the_state_file(
    mesh: LocalMesh, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def reconcile(*_args: object) -> None:
        raise WorkloadCertificateError("the CA refused the CSR of a-1")

    monkeypatch.setattr(mesh, "reconcile", reconcile)
    write_state(mesh.root, mesh.state)
    stop = asyncio.Event()
    task = asyncio.create_task(mesh.watch(stop))
    try:
        async with asyncio.timeout(10):
            while not read_state(mesh.root).problems:
                (mesh.root / "a.yaml").write_text(DEPLOYMENT.format(replicas=2))
                await asyncio.sleep(0.2)
        assert "the CA refused the CSR of a-1" in read_state(mesh.root).problems["replicas"]
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def test_token_reminting_survives_an_error(
    mesh: LocalMesh, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: one OSError ended the re-minting task; 24 h later every renewal was
    refused and certificates lapsed."""
    calls: list[int] = []

    def refresh() -> None:
        calls.append(len(calls))
        if len(calls) == 1:
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(runner, "TOKEN_REFRESH_S", 0.01)
    monkeypatch.setattr(mesh.identity, "refresh_tokens", refresh)
    task = asyncio.create_task(mesh._refresh_tokens())
    try:
        async with asyncio.timeout(10):
            while len(calls) < 3:
                await asyncio.sleep(0.01)
                assert not task.done(), f"the re-minting task ended: {task}"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_scale_up_that_fails_drops_its_new_replicas_so_a_retry_starts_them(
    mesh: LocalMesh, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new replica that could not start does not stay behind unregistered: the next
    reconcile (the retry) starts it again."""
    started: list[str] = []

    async def start_replica(r: runner.Replica) -> None:
        started.append(r.spec.instance)
        if len(started) == 1:
            raise WorkloadCertificateError(f"the CA refused the CSR of {r.spec.instance}")
        r.registered = True

    async def synced() -> None:
        return None

    monkeypatch.setattr(mesh, "_start_replica", start_replica)
    monkeypatch.setattr(mesh, "_wait_synced", synced)
    view = mesh.directory.loader.load()
    with pytest.raises(WorkloadCertificateError):
        await mesh.reconcile(view)
    assert mesh.started.replicas == []  # the failed one is stopped and dropped
    await mesh.reconcile(view)
    assert started == ["a-0", "a-0"]
    assert [r.spec.instance for r in mesh.started.replicas if r.registered] == ["a-0"]
    await mesh.stop()
