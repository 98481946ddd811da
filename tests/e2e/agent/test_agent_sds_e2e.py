"""A sidecar agent with the real mesh CA and a real Envoy: Envoy reaches xDS over mTLS with
the agent's certificate, serves that certificate over SDS on a TLS listener, and moves to
the renewed certificate with no failed request, on fresh or already-open connections."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from ads_stub import CLUSTER, LISTENER, StubAds, direct_response_listener
from agent_e2e import eventually, free_port
from cryptography import x509
from envoy.config.core.v3 import config_source_pb2
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2, tls_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc
from google.protobuf import json_format, wrappers_pb2

from meshca import MeshCa
from plait.agent import admin
from plait.agent.bootstrap import XdsProtocol, sds_config_source
from plait.agent.sidecar import SidecarAgent, SidecarOptions
from plait.agent.supervisor import SupervisorOptions
from plait.model.identity import CERT_SECRET, ROOT_SECRET, SpiffeId, control_plane_identity
from plait.model.labels import Labels
from plait.model.proxy import Proxy, ProxyKind, node_id

pytestmark = pytest.mark.e2e

WEB = SpiffeId("cluster.local", "shop", "web")
TTL_S = 10  # the CA's shortest; the agent renews at 30 % of it in these tests


class TlsAds(StubAds):
    """The stub ADS server, recording the client certificate of every stream."""

    def __init__(self) -> None:
        super().__init__()
        self.peer_certs: list[bytes] = []

    async def StreamAggregatedResources(  # noqa: N802 (gRPC method name)
        self, request_iterator: AsyncIterator[Any], context: Any
    ) -> None:
        self.peer_certs.extend(context.auth_context().get("x509_pem_cert", []))
        await super().StreamAggregatedResources(request_iterator, context)


async def tls_ads_server(servicer: TlsAds, key_pem: bytes, chain_pem: bytes, roots: bytes) -> Any:
    """A grpc.aio server on 127.0.0.1 that requires a client certificate chaining to roots."""
    server = grpc.aio.server()
    ads_pb2_grpc.add_AggregatedDiscoveryServiceServicer_to_server(servicer, server)
    creds = grpc.ssl_server_credentials(
        [(key_pem, chain_pem)], root_certificates=roots, require_client_auth=True
    )
    port = server.add_secure_port("127.0.0.1:0", creds)
    await server.start()
    return server, port


def sds_tls_listener(port: int) -> Any:
    """A direct-response listener whose TLS certificate and roots come from the agent's SDS."""
    listener = direct_response_listener(port)
    source = json_format.ParseDict(sds_config_source(), config_source_pb2.ConfigSource())
    context = tls_pb2.DownstreamTlsContext(
        common_tls_context=tls_pb2.CommonTlsContext(
            tls_certificate_sds_secret_configs=[
                secret_pb2.SdsSecretConfig(name=CERT_SECRET, sds_config=source)
            ],
            validation_context_sds_secret_config=secret_pb2.SdsSecretConfig(
                name=ROOT_SECRET, sds_config=source
            ),
        ),
        require_client_certificate=wrappers_pb2.BoolValue(value=False),
    )
    socket = listener.filter_chains[0].transport_socket
    socket.name = "envoy.transport_sockets.tls"
    socket.typed_config.Pack(context)
    return listener


def client_context(roots: bytes) -> ssl.SSLContext:
    """Trusts the mesh roots; workload certificates carry a URI SAN, no host name."""
    context = ssl.create_default_context(cadata=roots.decode())
    context.check_hostname = False
    return context


async def handshake_serial(port: int, context: ssl.SSLContext) -> tuple[int, list[str]]:
    """Serial and URI SANs of the certificate a new TLS connection is served."""
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    finally:
        writer.close()
    cert = x509.load_der_x509_certificate(der)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return cert.serial_number, san.get_values_for_type(x509.UniformResourceIdentifier)


async def get(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> int:
    """One keep-alive HTTP/1.1 GET on an open connection; the status code."""
    writer.write(b"GET / HTTP/1.1\r\nHost: web\r\n\r\n")
    async with asyncio.timeout(2):
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        await reader.readexactly(length)
    return int(head.split(b" ", 2)[1])


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    """A short directory: Unix socket paths must stay under ~100 bytes."""
    base = Path(tempfile.mkdtemp(dir="/tmp", prefix="sds"))
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
async def mesh_ca(tmp_path: Path) -> AsyncIterator[MeshCa]:
    async with MeshCa(tmp_path / "mesh", workload_ttl_s=TTL_S) as ca:
        yield ca


def sidecar_options(
    mesh_ca: MeshCa, run_dir: Path, sock_dir: Path, xds_port: int, xds_tls: bool = True, **ca: Any
) -> SidecarOptions:
    proxy = Proxy(
        id=node_id(ProxyKind.SIDECAR, "web-0", WEB.namespace),
        kind=ProxyKind.SIDECAR,
        workload="web",
        namespace=WEB.namespace,
        service_account=WEB.service_account,
        labels=Labels.of({"app": "web"}),
        inbound_port=15006,
    )
    return SidecarOptions(
        proxy=proxy,
        run_dir=run_dir,
        ca=mesh_ca.options(WEB, **ca),
        sds_socket=sock_dir / "web-0" / "sds.sock",
        xds_host="127.0.0.1",
        xds_port=xds_port,
        xds_tls=xds_tls,
        supervisor=SupervisorOptions(log_level="info", drain_timeout_s=0.2),
        xds_protocol=XdsProtocol.SOTW,  # the stub ADS speaks the State of the World only
    )


@pytest.fixture
async def agents(request: pytest.FixtureRequest) -> AsyncIterator[list[SidecarAgent]]:
    """Agents a test starts; stopped at teardown, with Envoy's log printed on failure."""
    made: list[SidecarAgent] = []
    yield made
    report = getattr(request.node, "report_call", None)
    for agent in made:
        if report is None or report.failed:
            print(f"===== Envoy log of {agent.envoy.name}\n{agent.envoy.log_tail(200)}")
        await agent.stop()


async def test_envoy_gets_its_certificate_over_sds_and_rotates_without_a_failed_request(
    mesh_ca: MeshCa, tmp_path: Path, sock_dir: Path, agents: list[SidecarAgent]
) -> None:
    creds = mesh_ca.server.serving_credentials()  # the control plane's own certificate
    ads = TlsAds()
    port = free_port()
    ads.set_resources({CLUSTER: [], LISTENER: [sds_tls_listener(port)]})
    server, xds_port = await tls_ads_server(
        ads, creds.key_pem, creds.chain_pem, creds.trust_bundle_pem
    )
    try:
        agent = SidecarAgent(
            sidecar_options(mesh_ca, tmp_path, sock_dir, xds_port, renew_fraction=0.3)
        )
        agents.append(agent)
        await agent.start()
        await agent.wait_ready(10)

        # xDS went over mTLS with the agent's certificate.
        (peer,) = {x509.load_pem_x509_certificate(p).serial_number for p in ads.peer_certs}
        first = agent.certificates.current
        assert first is not None and peer == first.serial

        # The listener serves the workload certificate from SDS.
        context = client_context(mesh_ca.root_file.read_bytes())
        serial, uris = await handshake_serial(port, context)
        assert (serial, uris) == (first.serial, [WEB.uri])

        # Through a renewal: an open connection and fresh handshakes keep working.
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
        statuses: list[int] = []
        fresh: list[int] = []

        async def rotated() -> bool:
            statuses.append(await get(reader, writer))
            fresh.append((await handshake_serial(port, context))[0])
            return fresh[-1] != first.serial

        took = await eventually(rotated, TTL_S, "a handshake with the renewed certificate")
        statuses.append(await get(reader, writer))
        writer.close()
    finally:
        await server.stop(None)

    renewed = agent.certificates.current
    assert renewed is not None and fresh[-1] == renewed.serial
    assert statuses == [200] * len(statuses)
    assert len(statuses) > 10  # traffic ran across the rotation
    assert took < TTL_S * 0.6
    assert agent.sds.last_nack is None


async def test_envoy_refuses_a_control_plane_with_another_identity(
    mesh_ca: MeshCa, tmp_path: Path, sock_dir: Path, agents: list[SidecarAgent]
) -> None:
    impostor = WEB  # a workload's certificate, not the control plane's
    assert impostor != control_plane_identity(WEB.trust_domain)
    key_pem, chain = mesh_ca.ca.issue_serving(impostor, ["localhost"], ["127.0.0.1"])
    ads = TlsAds()
    ads.set_resources({CLUSTER: [], LISTENER: []})
    roots = "".join(mesh_ca.ca.trust_bundle()).encode()
    server, xds_port = await tls_ads_server(ads, key_pem, "".join(chain).encode(), roots)
    try:
        agent = SidecarAgent(sidecar_options(mesh_ca, tmp_path, sock_dir, xds_port))
        agents.append(agent)
        await agent.start()

        async def san_refused() -> bool:
            url = agent.envoy.admin_url
            assert url is not None
            stats = await admin.stats(url, r"^cluster\.xds-grpc\.ssl\.fail_verify_san$")
            return stats.get("cluster.xds-grpc.ssl.fail_verify_san", 0) >= 1

        await eventually(san_refused, 10, "Envoy to refuse the control plane's SAN")
    finally:
        await server.stop(None)

    assert not agent.envoy.is_ready()
    assert ads.nodes == []  # no ADS stream got through


async def test_the_agent_stops_in_order_and_leaves_no_socket(
    mesh_ca: MeshCa, tmp_path: Path, sock_dir: Path
) -> None:
    options = sidecar_options(mesh_ca, tmp_path, sock_dir, free_port(), xds_tls=False)
    agent = SidecarAgent(options)
    await agent.start()
    pid = agent.envoy.pid
    assert pid is not None and options.sds_socket.exists()
    started = time.monotonic()

    await agent.stop()

    assert agent.envoy.pid is None
    assert not options.sds_socket.exists()
    assert time.monotonic() - started < 10
    await agent.stop()  # idempotent
