"""`plait status -o json`'s `problems`: what failed in the background and is retried."""

from __future__ import annotations

import os
from pathlib import Path

from plait.local.ports import free_port
from plait.local.statefile import MeshState, write_state
from plait.local.status import collect_status


def test_background_problems_of_plait_up_are_in_the_status(tmp_path: Path) -> None:
    port = free_port()  # nothing listens: the control plane is unreachable
    state = MeshState(
        pid=os.getpid(),
        phase="ready",
        root=str(tmp_path),
        xds="127.0.0.1:1",
        status_url=f"http://127.0.0.1:{port}/status",
        problems={"replicas": "WorkloadCertificateError: the CA refused the CSR of a-1"},
    )
    write_state(tmp_path, state)
    data = collect_status(tmp_path)
    assert data["phase"] == "ready"
    assert data["problems"] == {
        "replicas": "WorkloadCertificateError: the CA refused the CSR of a-1"
    }
    assert "unreachable" in data["controlPlane"]["error"]
