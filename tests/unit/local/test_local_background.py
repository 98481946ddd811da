"""`plait up`'s background work (`local.background`) survives its failures and shows them
(no process runs here: the failing steps are stand-ins for a CA that refuses and a disk
that errs)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from plait.errors import WorkloadCertificateError
from plait.local import background
from plait.local.runner import LocalMesh
from plait.local.statefile import read_state, write_state


async def test_a_reconcile_that_fails_is_reported_and_later_edits_still_apply(
    mesh: LocalMesh, monkeypatch: pytest.MonkeyPatch, set_replicas: Callable[[int], None]
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
                set_replicas(1 + n % 3)
                await asyncio.sleep(0.2)
                assert not task.done(), f"the watch task ended: {task}"
        assert any("the CA refused the CSR of a-1" in line for line in lines), lines
        # the failure was visible in `plait status` meanwhile, and is gone once one worked
        assert read_state(mesh.root).problems == {}
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def test_a_failing_reconcile_is_shown_in_the_state_file(
    mesh: LocalMesh, monkeypatch: pytest.MonkeyPatch, set_replicas: Callable[[int], None]
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
                set_replicas(2)
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

    monkeypatch.setattr(background, "TOKEN_REFRESH_S", 0.01)
    monkeypatch.setattr(mesh.identity, "refresh_tokens", refresh)
    problems = background.Problems(mesh.root, mesh.state)
    task = asyncio.create_task(background.refresh_tokens(mesh.identity, problems, print))
    try:
        async with asyncio.timeout(10):
            while len(calls) < 3:
                await asyncio.sleep(0.01)
                assert not task.done(), f"the re-minting task ended: {task}"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
