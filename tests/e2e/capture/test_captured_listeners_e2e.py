"""The listeners `translate.capturedout` makes, in a real Envoy behind `plait capture
apply`: an app reaches a TCP service at its cluster IP (the service's cluster, not the
passthrough), a server-first protocol on a declared TCP port gets its greeting with no
sniffing wait while an undeclared port waits at most the detection timeout, and unknown
destinations pass through (ALLOW_ANY) or are closed (REGISTRY_ONLY)."""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from capturekit import (
    ADMIN_PORT,
    PYTHON,
    ROOT_ONLY,
    PodEnvoy,
    Procs,
    connect,
    host_snapshot,
    run,
    start_echo,
    start_envoy,
)
from envoy.config.bootstrap.v3 import bootstrap_pb2
from envoy.config.cluster.v3 import cluster_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from google.protobuf import json_format

from plait.model.meshsettings import OutboundMode
from plait.model.registry import Protocol
from plait.podnet import Pod, PodNetwork
from plait.translate import captured
from plait.translate.capturedout import (
    OutboundOptions,
    ServiceAddress,
    captured_hcm,
    outbound_listeners,
)
from plait.translate.listeners import outbound_listener

GREETER = r"""
import socket, sys, threading
from pathlib import Path

def serve(sock):
    while True:
        conn, _ = sock.accept()
        with conn:
            conn.sendall(f"hello {sock.getsockname()[1]}\n".encode())  # the server speaks first
            conn.recv(1024)

socks = []
for port in sys.argv[2:]:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", int(port)))
    s.listen(64)
    socks.append(s)
for s in socks[1:]:
    threading.Thread(target=serve, args=(s,), daemon=True).start()
Path(sys.argv[1]).write_text("ready")
serve(socks[0])
"""

FIRST_WORD = r"""
import socket, sys, time
address = (socket.gethostbyname(sys.argv[1]), int(sys.argv[2]))  # not timed
start = time.monotonic()
s = socket.create_connection(address, timeout=5)
greeting = s.recv(1024).decode().strip()
print(f"{(time.monotonic() - start) * 1000:.1f} {greeting}")
"""

pytestmark = ROOT_ONLY


@dataclass
class Mesh:
    net: PodNetwork
    client: Pod
    db: Pod
    web: Pod
    envoy: PodEnvoy
    procs: Procs
    workdir: Path
    services: tuple[ServiceAddress, ...]


def _static_cluster(name: str, ip: str, port: int) -> cluster_pb2.Cluster:
    cluster = cluster_pb2.Cluster(name=name, type=cluster_pb2.Cluster.STATIC)
    cluster.connect_timeout.seconds = 5
    cluster.load_assignment.cluster_name = name
    address = cluster.load_assignment.endpoints.add().lb_endpoints.add().endpoint.address
    address.socket_address.address, address.socket_address.port_value = ip, port
    return cluster


def bootstrap(mesh: Mesh, mode: OutboundMode) -> dict[str, Any]:
    """The translated outbound listeners with their routes inlined (no xDS here), each
    service's cluster made STATIC on its pod, and the passthrough/black-hole clusters."""
    explicit = hcm_pb2.HttpConnectionManager()
    outbound_listener("127.0.0.1", 1).filter_chains[0].filters[0].typed_config.Unpack(explicit)
    out = bootstrap_pb2.Bootstrap()
    out.admin.address.socket_address.address = "0.0.0.0"
    out.admin.address.socket_address.port_value = ADMIN_PORT
    for listener in outbound_listeners(
        OutboundOptions(mesh.services, captured_hcm(explicit), mode)
    ):
        for chain in listener.filter_chains:
            for f in chain.filters:
                hcm = hcm_pb2.HttpConnectionManager()
                if f.typed_config.Unpack(hcm):
                    hcm.route_config.name = hcm.rds.route_config_name
                    hcm.ClearField("rds")
                    f.typed_config.Pack(hcm)
        out.static_resources.listeners.append(listener)
    out.static_resources.clusters.extend(
        [captured.passthrough_cluster(), captured.blackhole_cluster()]
    )
    out.static_resources.clusters.extend(
        _static_cluster(svc.cluster, str(mesh.db.ip), svc.port) for svc in mesh.services
    )
    return dict(json_format.MessageToDict(out))


@pytest.fixture(scope="module")
def mesh() -> Iterator[Mesh]:
    before = host_snapshot()
    workdir = Path(tempfile.mkdtemp(prefix="plait-captured-"))
    workdir.chmod(0o755)
    procs = Procs()
    net = PodNetwork.create(workdir / "podnet.json")
    try:
        client, db, web = net.add_pod("client"), net.add_pod("db", "data"), net.add_pod("web")
        services = (
            ServiceAddress("db.data.svc.cluster.local", str(net.add_service("db", "data")), 5432, Protocol.TCP),
            ServiceAddress("legacy.data.svc.cluster.local", str(net.add_service("legacy", "data")), 7000, Protocol.UNKNOWN),
        )  # fmt: skip
        start_echo(procs, web, workdir, 9000)
        ready = workdir / "greeter.ready"
        procs.start(
            db.exec_argv([PYTHON, "-c", GREETER, str(ready), "5432", "7000"]),
            workdir / "greeter.log",
        )
        mesh = Mesh(net, client, db, web, None, procs, workdir, services)  # type: ignore[arg-type]
        mesh.envoy = start_envoy(
            procs, client, workdir / "envoy", bootstrap(mesh, OutboundMode.ALLOW_ANY)
        )
        run(
            client.exec_argv(
                [sys.executable, "-m", "plait", "capture", "apply", "--proxy-port", str(ADMIN_PORT)]
            )
        )
        yield mesh
    finally:
        procs.stop()
        net.close()
        shutil.rmtree(workdir, ignore_errors=True)
    assert host_snapshot() == before, "the pod network left something on the host"


@pytest.fixture(autouse=True)
def _envoy_diagnostics(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed and "mesh" in request.fixturenames:
        print(request.getfixturevalue("mesh").envoy.diagnostics())


def first_word(mesh: Mesh, host: str, port: int) -> tuple[float, str]:
    """(ms from connecting to the server's greeting, the greeting) from inside the client pod."""
    out = run(mesh.client.exec_argv([PYTHON, "-c", FIRST_WORD, host, str(port)])).stdout.split(
        maxsplit=1
    )
    return float(out[0]), out[1].strip()


def test_a_tcp_service_is_reached_by_name_at_its_cluster_ip_through_its_cluster(mesh: Mesh) -> None:
    db = mesh.services[0]
    stat = f"cluster.{db.cluster}.upstream_cx_total"
    before, passthrough = (
        mesh.envoy.stat(stat),
        mesh.envoy.stat("cluster.PassthroughCluster.upstream_cx_total"),
    )
    assert first_word(mesh, "db.data", 5432)[1] == "hello 5432"  # hosts file → cluster IP → Envoy
    assert mesh.envoy.stat(stat) == before + 1
    assert mesh.envoy.stat("cluster.PassthroughCluster.upstream_cx_total") == passthrough


def test_a_server_first_protocol_on_a_declared_port_does_not_wait_for_sniffing(mesh: Mesh) -> None:
    declared = min(first_word(mesh, "db.data", 5432)[0] for _ in range(3))
    waited, greeting = first_word(mesh, "legacy.data", 7000)
    assert greeting == "hello 7000"  # undeclared: sniffed, then TCP after the timeout
    print(f"greeting after: declared TCP {declared:.1f} ms, undeclared (sniffed) {waited:.1f} ms")
    assert waited >= 95.0, f"an undeclared port should wait for detection, waited {waited} ms"
    assert declared < 95.0, f"a declared TCP port waited {declared} ms for its greeting"


def test_an_unknown_destination_passes_through_under_allow_any(mesh: Mesh) -> None:
    stat = "cluster.PassthroughCluster.upstream_cx_total"
    before = mesh.envoy.stat(stat)
    assert connect(mesh.client, mesh.web.ip, 9000) == f"9000 {mesh.client.ip} hi"
    assert mesh.envoy.stat(stat) == before + 1


def test_an_unknown_destination_is_closed_under_registry_only(mesh: Mesh) -> None:
    assert mesh.envoy.proc is not None
    Procs.stop_one(mesh.envoy.proc)
    mesh.envoy = start_envoy(
        mesh.procs,
        mesh.client,
        mesh.workdir / "envoy-registry-only",
        bootstrap(mesh, OutboundMode.REGISTRY_ONLY),
    )
    refused = run(
        mesh.client.exec_argv([PYTHON, "-c", "import socket,sys\n"
            "s = socket.create_connection((sys.argv[1], 9000), timeout=5); s.sendall(b'hi')\n"
            "print(repr(s.recv(1024)))", str(mesh.web.ip)]),
        check=False,
    )  # fmt: skip
    assert refused.stdout.strip() in ("b''", "") and "9000" not in refused.stdout
    assert mesh.envoy.stat("cluster.BlackHoleCluster.upstream_cx_none_healthy") >= 1
    assert first_word(mesh, "db.data", 5432)[1] == "hello 5432"  # registered services still work
