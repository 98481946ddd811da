"""The inbound listener `translate.capturedin` makes, under mesh-wide STRICT, in a real
Envoy behind `plait capture apply`: a plain-text connection from another pod or from the
host straight to the app's podIP:port never reaches the app (its echo server logs every
connection it accepts), while a mesh mTLS client gets through to the app.

Validate-free static bootstrap: the SDS secrets the translated chains name are served as
static secrets (same names, no sds_config) made by tests/testpki."""

from __future__ import annotations

import shutil
import socket
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
    host_snapshot,
    run,
    start_echo,
    start_envoy,
)
from envoy.config.bootstrap.v3 import bootstrap_pb2
from envoy.config.cluster.v3 import cluster_pb2
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2, tls_pb2
from google.protobuf import json_format

import testpki
from plait.api.security import MtlsMode
from plait.model.identity import CERT_SECRET, ROOT_SECRET
from plait.model.registry import Protocol
from plait.podnet import Pod, PodNetwork
from plait.translate import captured, names
from plait.translate.capturedin import AppPort, InboundOptions, virtual_inbound
from plait.translate.listeners import inbound_listener

APP_PORT = 8080
ATTEMPT = r"""
import socket, ssl, sys
ip, port, certs = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
try:
    raw = socket.create_connection((ip, port), timeout=5)
    if certs:
        ctx = ssl.create_default_context(cafile=certs[0])
        ctx.check_hostname = False
        ctx.load_cert_chain(certs[1], certs[2])
        raw = ctx.wrap_socket(raw)
    raw.sendall(b"hello, app")  # tls_inspector needs a record header's worth to decide
    print(raw.recv(1024).decode() or "closed")
except OSError as exc:
    print(f"closed: {type(exc).__name__}")
"""

pytestmark = ROOT_ONLY


@dataclass
class Inbound:
    app: Pod
    peer: Pod
    envoy: PodEnvoy
    echo_log: Path
    pki: Path


def _static_secrets(pki: Path) -> list[secret_pb2.Secret]:
    cert = secret_pb2.Secret(name=CERT_SECRET)
    cert.tls_certificate.certificate_chain.inline_bytes = (pki / "app.crt").read_bytes()
    cert.tls_certificate.private_key.inline_bytes = (pki / "app.key").read_bytes()
    root = secret_pb2.Secret(name=ROOT_SECRET)
    root.validation_context.trusted_ca.inline_bytes = (pki / "ca.crt").read_bytes()
    return [cert, root]


def bootstrap(pki: Path) -> dict[str, Any]:
    listener = virtual_inbound(
        InboundOptions(
            [AppPort(APP_PORT, Protocol.TCP)],
            inbound_listener("127.0.0.1", 1, names.inbound_cluster(APP_PORT), MtlsMode.STRICT),
            MtlsMode.STRICT,
        )
    )
    for chain in listener.filter_chains:  # the agent's SDS secrets, served statically here
        context = tls_pb2.DownstreamTlsContext()
        assert chain.transport_socket.typed_config.Unpack(context)
        common = context.common_tls_context
        common.tls_certificate_sds_secret_configs[0].ClearField("sds_config")
        common.combined_validation_context.validation_context_sds_secret_config.ClearField(
            "sds_config"
        )
        chain.transport_socket.typed_config.Pack(context)
    app = cluster_pb2.Cluster(name=names.inbound_cluster(APP_PORT), type=cluster_pb2.Cluster.STATIC)
    app.connect_timeout.seconds = 5
    app.load_assignment.cluster_name = app.name
    address = app.load_assignment.endpoints.add().lb_endpoints.add().endpoint.address
    address.socket_address.address, address.socket_address.port_value = "127.0.0.1", APP_PORT
    out = bootstrap_pb2.Bootstrap()
    out.admin.address.socket_address.address = "0.0.0.0"
    out.admin.address.socket_address.port_value = ADMIN_PORT
    out.static_resources.listeners.append(listener)
    out.static_resources.clusters.extend([app, captured.inbound_passthrough_cluster()])
    out.static_resources.secrets.extend(_static_secrets(pki))
    return dict(json_format.MessageToDict(out))


@pytest.fixture(scope="module")
def inbound() -> Iterator[Inbound]:
    before = host_snapshot()
    workdir = Path(tempfile.mkdtemp(prefix="plait-inbound-"))
    workdir.chmod(0o755)
    procs = Procs()
    net = PodNetwork.create(workdir / "podnet.json")
    try:
        app, peer = net.add_pod("app"), net.add_pod("peer")
        pki = workdir / "pki"
        testpki.ca_and_hosts(pki, ["app", "client"])
        echo_log = start_echo(procs, app, workdir, APP_PORT)
        envoy = start_envoy(procs, app, workdir / "envoy", bootstrap(pki))
        run(
            app.exec_argv(
                [sys.executable, "-m", "plait", "capture", "apply", "--proxy-port", str(ADMIN_PORT)]
            )
        )
        yield Inbound(app, peer, envoy, echo_log, pki)
    finally:
        procs.stop()
        net.close()
        shutil.rmtree(workdir, ignore_errors=True)
    assert host_snapshot() == before, "the pod network left something on the host"


@pytest.fixture(autouse=True)
def _envoy_diagnostics(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed and "inbound" in request.fixturenames:
        print(request.getfixturevalue("inbound").envoy.diagnostics())


def _accepted(inbound: Inbound) -> int:
    return len(inbound.echo_log.read_text().splitlines())


def _attempt(inbound: Inbound, *certs: str) -> str:
    argv = [PYTHON, "-c", ATTEMPT, str(inbound.app.ip), str(APP_PORT), *certs]
    return run(inbound.peer.exec_argv(argv)).stdout.strip()


def test_plain_text_from_another_pod_never_reaches_the_app(inbound: Inbound) -> None:
    accepted, unmatched = (
        _accepted(inbound),
        inbound.envoy.stat("listener.0.0.0.0_15006.no_filter_chain_match"),
    )
    assert _attempt(inbound) in ("closed", "closed: ConnectionResetError")  # at once, no timeout
    assert inbound.envoy.stat("listener.0.0.0.0_15006.no_filter_chain_match") == unmatched + 1
    assert _accepted(inbound) == accepted


def test_plain_text_from_the_host_never_reaches_the_app(inbound: Inbound) -> None:
    accepted = _accepted(inbound)
    with socket.create_connection((str(inbound.app.ip), APP_PORT), timeout=5) as conn:
        conn.sendall(b"hello, app")
        try:
            reply = conn.recv(1024)
        except ConnectionResetError:
            reply = b""
    assert reply == b""
    assert _accepted(inbound) == accepted


def test_a_mesh_mtls_client_reaches_the_app(inbound: Inbound) -> None:
    accepted = _accepted(inbound)
    pki = inbound.pki
    reply = _attempt(inbound, str(pki / "ca.crt"), str(pki / "client.crt"), str(pki / "client.key"))
    assert reply == f"{APP_PORT} 127.0.0.1 hello, app"  # through Envoy's inbound cluster
    assert _accepted(inbound) == accepted + 1
