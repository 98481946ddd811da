"""The control plane as `plait up`'s child process (`plait controlplane DIR`), restarted
if it dies (Envoys keep their config and reconnect meanwhile); ready once its xDS,
status and CA ports accept connections."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from plait.local.ports import accepts
from plait.local.process import ManagedProcess
from plait.local.waits import poll_until

HOST = "127.0.0.1"
LISTEN_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class ControlPlaneChild:
    """Where the child serves (xDS on `xds_host`, the rest on loopback) and what it reads."""

    root: Path
    xds_host: str
    xds_port: int
    status_port: int
    ca_port: int
    token_key: Path
    cert_ttl: str
    ca_dir: Path
    log_path: Path


def controlplane_process(child: ControlPlaneChild) -> ManagedProcess:
    argv = [
        sys.executable, "-m", "plait", "controlplane", str(child.root),
        "--xds-host", child.xds_host,
        "--xds-port", str(child.xds_port),
        "--status-port", str(child.status_port),
        "--ca-port", str(child.ca_port),
        "--token-key", str(child.token_key),
        "--cert-ttl", child.cert_ttl,
        "--ca-dir", str(child.ca_dir),
    ]  # fmt: skip
    return ManagedProcess(
        "controlplane", argv, env=dict(os.environ), cwd=child.root, log_path=child.log_path
    )


async def wait_listening(child: ControlPlaneChild) -> None:
    async def listening() -> bool:
        ports = (child.status_port, child.ca_port)
        xds = await accepts(child.xds_host, child.xds_port)
        return xds and all([await accepts(HOST, p) for p in ports])

    await poll_until(
        listening,
        LISTEN_TIMEOUT_S,
        f"the control plane to listen (see {child.log_path})",
    )
