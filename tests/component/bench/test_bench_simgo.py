"""The Go simulated proxies (`bench/simgo`) against plait's ADS server, in plain text
and over mutual TLS with their own workload certificates: SotW and delta clients sync
every type, follow an endpoint change, and after a control-plane restart
sync again (delta ones resuming from what they hold); and the module's own `go test`
passes (requests and responses against protobuf's own encoding)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # bench/ is a top-level package

from bench import meshid  # noqa: E402
from bench.meshgen import SnapshotBuilder, SyntheticMesh, fake_ports, instance_of, sidecar  # noqa: E402
from bench.procs import PROXY_ENVIRON, terminate  # noqa: E402
from bench.simbuild import SOURCE, go_command, simgo  # noqa: E402
from bench.simclient import proxies_to_json  # noqa: E402

from plait.agent.process import spawn  # noqa: E402
from plait.controlplane.security import MeshSecurity  # noqa: E402
from plait.controlplane.state import MeshState  # noqa: E402
from plait.model.labels import Labels  # noqa: E402
from plait.model.registry import WorkloadInstance  # noqa: E402
from plait.xds.auth import ServerTls  # noqa: E402
from plait.xds.server import AdsServer  # noqa: E402

SERVICES, PROXIES = 6, 4
TYPES = {"cds", "eds", "lds", "rds"}


class Pushed:
    """An XdsObserver adding up the bytes written."""

    def __init__(self) -> None:
        self.bytes = 0

    def pushed(self, type_name: str, size: int, seconds: float | None) -> None:
        self.bytes += size

    def converged(self, seconds: float) -> None:
        pass


@pytest.fixture(scope="module")
def binary() -> str:
    return simgo()  # built once per source (cached outside the repo)


def _go(*args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "CGO_ENABLED": "0",
        "GOTOOLCHAIN": "local",
        "GOFLAGS": "-mod=readonly -modcacherw",
    }
    return subprocess.run(
        [go_command(), *args], cwd=SOURCE, env=env, capture_output=True, text=True, timeout=600
    )


def test_requests_and_responses_match_protobufs_own_encoding(binary: str) -> None:
    """The module's `go test`: SotW requests are the bytes proto.Marshal writes, and what
    the proxies read of a response is what protobuf decodes."""
    done = _go("test", "./...")
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_go_module_is_vetted_and_formatted(binary: str) -> None:
    vet = _go("vet", "./...")
    assert vet.returncode == 0, vet.stdout + vet.stderr
    gofmt = Path(go_command()).resolve().parent / "gofmt"  # (Go's own, beside go)
    unformatted = subprocess.run(
        [str(gofmt), "-l", "."], cwd=SOURCE, capture_output=True, text=True, check=True
    ).stdout
    assert unformatted == "", f"gofmt would change: {unformatted}"


@contextlib.asynccontextmanager
async def _sims(binary: str, port: int, path: Path, *flags: str) -> AsyncIterator[None]:
    proc = await spawn(
        [binary, str(port), str(path), "--reconnect", *flags],
        stdout=asyncio.subprocess.DEVNULL,
        env=dict(PROXY_ENVIRON),
    )
    try:
        yield
    finally:
        await terminate(proc)
        assert proc.returncode == 0, f"simgo exited with {proc.returncode} on SIGTERM"


def _all_synced(server: AdsServer, generation: int) -> None:
    statuses = server.statuses()
    assert len(statuses) == PROXIES
    for s in statuses:
        assert s.connected and s.nack is None, s
        assert (s.synced_generation or 0) >= generation, s
        assert set(s.types) == TYPES and set(s.sync.values()) == {"SYNCED"}, s.sync


@contextlib.asynccontextmanager
async def _mesh_ca(tmp_path: Path) -> AsyncIterator[MeshSecurity]:
    identity = meshid.issuer(tmp_path / "state")
    security = meshid.security(identity)
    await security.start()
    try:
        yield security
    finally:
        await security.stop()
        identity.cleanup()


@pytest.mark.parametrize("xds", ["plaintext", "mtls"])
@pytest.mark.parametrize("flavour", ["sotw", "delta"])
async def test_proxies_sync_follow_a_change_and_resync_after_a_restart(
    binary: str, flavour: str, xds: str, tmp_path: Path
) -> None:
    mesh = SyntheticMesh.make(SERVICES, PROXIES, fake_ports())
    registry = list(mesh.registry)
    builder = SnapshotBuilder(mesh.files, registry)
    async with _mesh_ca(tmp_path) as security:
        tls, certs = None, None
        if xds == "mtls":  # the ADS port admits a proxy only as its certificate's workload
            tls = security.xds_tls(meshid.AdmitAll())
            certs = meshid.proxy_certs(security.ca, mesh.proxies, tmp_path / "certs")
        path = tmp_path / "proxies.json"
        path.write_text(proxies_to_json(mesh.proxies, certs))
        await _run(binary, flavour, builder, registry, path, tls)


async def _run(
    binary: str,
    flavour: str,
    builder: SnapshotBuilder,
    registry: list[WorkloadInstance],
    path: Path,
    tls: ServerTls | None,
) -> None:
    pushed = Pushed()
    state = MeshState(builder.snapshot())
    server = AdsServer(state, observer=pushed)
    port = await server.start("127.0.0.1", 0, tls=tls)
    try:
        async with _sims(binary, port, path, *(["--delta"] if flavour == "delta" else [])):
            assert await server.wait_synced(state.generation, 60, min_proxies=PROXIES)
            _all_synced(server, state.generation)
            initial = pushed.bytes

            svc = SyntheticMesh.name(1)
            extra = sidecar(f"{svc}-extra", svc, Labels.of({"app": svc}), (61000, 61001, 61002))
            gen = await state.publish(builder.set_registry([*registry, instance_of(extra)]))
            assert await server.wait_synced(gen, 30, min_proxies=PROXIES)
            _all_synced(server, gen)

            await server.stop(0.5)  # a control-plane restart: a fresh server, same port
            fresh = MeshState(state.snapshot)
            server = AdsServer(fresh, observer=pushed)
            pushed.bytes = 0
            await server.start("127.0.0.1", port, tls=tls)
            assert await server.wait_synced(fresh.generation, 60, min_proxies=PROXIES)
            _all_synced(server, fresh.generation)
            if flavour == "delta":  # announced what they hold: nothing is sent again
                assert pushed.bytes < initial / 10, (pushed.bytes, initial)
            else:  # a SotW stream starts from nothing
                assert pushed.bytes >= initial * 0.9, (pushed.bytes, initial)
    finally:
        await server.stop(0.5)
