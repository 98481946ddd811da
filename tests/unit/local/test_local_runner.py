"""`LocalMesh.reconcile` after a failure (no process runs here: the failing step is a
stand-in for a CA that refuses)."""

from __future__ import annotations

import pytest

from plait.errors import WorkloadCertificateError
from plait.local.replicas import Replica
from plait.local.runner import LocalMesh


async def test_a_scale_up_that_fails_drops_its_new_replicas_so_a_retry_starts_them(
    mesh: LocalMesh, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new replica that could not start does not stay behind unregistered: the next
    reconcile (the retry) starts it again."""
    started: list[str] = []

    async def start_replica(r: Replica) -> None:
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
