"""The Python simulated proxies (`bench.simclient`, `bench.simdelta`) over mutual TLS
against plait's ADS server, each with its own workload certificate, as the scale bench
runs them with `--sim python`: every proxy syncs every type."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # bench/ is a top-level package

from bench import meshid  # noqa: E402
from bench.meshgen import SnapshotBuilder, SyntheticMesh, fake_ports  # noqa: E402
from bench.procs import PROXY_ENVIRON, spawn_python, terminate  # noqa: E402
from bench.simclient import proxies_to_json  # noqa: E402

from plait.controlplane.state import MeshState  # noqa: E402
from plait.xds.server import AdsServer  # noqa: E402

SERVICES, PROXIES = 5, 4


@pytest.mark.parametrize("flavour", ["sotw", "delta"])
async def test_python_proxies_sync_over_mtls(flavour: str, tmp_path: Path) -> None:
    mesh = SyntheticMesh.make(SERVICES, PROXIES, fake_ports())
    state = MeshState(SnapshotBuilder(mesh.files, list(mesh.registry)).snapshot())
    identity = meshid.issuer(tmp_path / "state")
    security = meshid.security(identity)
    await security.start()
    server = AdsServer(state)
    try:
        port = await server.start("127.0.0.1", 0, tls=security.xds_tls(meshid.AdmitAll()))
        certs = meshid.proxy_certs(security.ca, mesh.proxies, tmp_path / "certs")
        path = tmp_path / "proxies.json"
        path.write_text(proxies_to_json(mesh.proxies, certs))
        flags = ["--delta"] if flavour == "delta" else []
        proc = await spawn_python(
            "bench.simclient", str(port), str(path), *flags,
            stdout=asyncio.subprocess.DEVNULL, environ=PROXY_ENVIRON,
        )  # fmt: skip
        try:
            assert await server.wait_synced(state.generation, 60, min_proxies=PROXIES)
            statuses = server.statuses()
            assert len(statuses) == PROXIES
            for s in statuses:
                assert set(s.sync.values()) == {"SYNCED"} and len(s.sync) == 4, s.sync
        finally:
            await terminate(proc)
    finally:
        await server.stop(0.5)
        await security.stop()
        identity.cleanup()
