"""The ADS server over mutual TLS: who may connect, who gets which node, and rotation."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from ads_testkit import TIMEOUT, AdsClient, mesh, node_for
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from plait.ca import ServingCredentials
from plait.model.identity import SpiffeId
from plait.model.labels import Labels
from plait.model.proxy import Proxy, ProxyKind
from plait.translate.typeurls import CLUSTER, ENDPOINT
from plait.xds import AdsServer, ServerTls, StaticConfigSource

NOW = datetime.datetime.now(datetime.UTC)

ORDERS = "spiffe://cluster.local/ns/default/sa/orders"
PLAITD = "spiffe://cluster.local/ns/istio-system/sa/plaitd"


def _proxy(service_account: str, workload: str = "orders") -> Proxy:
    return Proxy(
        id=f"sidecar~{workload}-0.default",
        kind=ProxyKind.SIDECAR,
        workload=workload,
        namespace="default",
        service_account=service_account,
        labels=Labels.of({"app": workload}),
        inbound_port=15006,
        outbound_port=15001,
    )


ORDERS_PROXY = _proxy("orders")
CONFIG = mesh({"a": [8001]}, route_to="a")

# --- a small PKI -----------------------------------------------------------------------


@dataclass(frozen=True)
class Leaf:
    cert: x509.Certificate
    key_pem: bytes

    @property
    def chain_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)


class Ca:
    """A self-signed root issuing leaves with the given SANs."""

    def __init__(self, name: str) -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        self.cert = self._build(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        self.pem = self.cert.public_bytes(serialization.Encoding.PEM)

    def _build(
        self, subject: x509.Name, leaf_key: ec.EllipticCurvePrivateKey | None = None, **san: str
    ) -> x509.Certificate:
        now = datetime.datetime.now(datetime.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject if leaf_key is None else self.cert.subject)
            .public_key((leaf_key or self._key).public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
        )
        if leaf_key is None:
            return builder.add_extension(
                x509.BasicConstraints(ca=True, path_length=None), True
            ).sign(self._key, hashes.SHA256())
        names: list[x509.GeneralName] = []
        if "uri" in san:
            names.append(x509.UniformResourceIdentifier(san["uri"]))
        if "dns" in san:
            names.append(x509.DNSName(san["dns"]))
        if "ip" in san:
            names.append(x509.IPAddress(ipaddress.ip_address(san["ip"])))
        builder = builder.add_extension(x509.SubjectAlternativeName(names), False)
        return builder.sign(self._key, hashes.SHA256())

    def issue(self, **san: str) -> Leaf:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = self._build(x509.Name([]), key, **san)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return Leaf(cert, pem)

    def serving(self, version: int, bundle: bytes | None = None) -> ServingCredentials:
        leaf = self.issue(uri=PLAITD, dns="localhost", ip="127.0.0.1")
        return ServingCredentials(
            leaf.key_pem, (leaf.chain_pem.decode(),), ((bundle or self.pem).decode(),), NOW, version
        )


# --- fixtures --------------------------------------------------------------------------


@dataclass
class Mesh:
    ca: Ca
    server: AdsServer
    source: StaticConfigSource
    serving: ServingCredentials  # what ServerTls.credentials() returns; tests swap it
    refuse: Callable[[SpiffeId, Proxy], str | None] = lambda _i, _p: None

    @property
    def port(self) -> int:
        assert self.server.port is not None
        return self.server.port


@dataclass
class _Admission:
    """A ProxyAdmission that asks the test's `Mesh.refuse`."""

    mesh: Mesh

    def admit(self, identity: SpiffeId, proxy: Proxy) -> str | None:
        return self.mesh.refuse(identity, proxy)


@pytest.fixture
async def tls_mesh() -> AsyncIterator[Mesh]:
    ca, source = Ca("plait test root"), StaticConfigSource()
    source.set({ORDERS_PROXY.id: CONFIG, _proxy("payment").id: CONFIG})
    m = Mesh(ca, AdsServer(source), source, ca.serving(1))
    tls = ServerTls(lambda: m.serving, "cluster.local", admission=_Admission(m))
    await m.server.start("127.0.0.1", 0, tls=tls)
    yield m
    await m.server.stop(0)


@pytest.fixture
async def connect(tls_mesh: Mesh) -> AsyncIterator[Callable[..., AdsClient]]:
    """`connect(leaf or None, proxy, roots=mesh CA)`: an ADS client over TLS."""
    clients: list[AdsClient] = []

    def open_client(leaf: Leaf | None, proxy: Proxy, roots: bytes | None = None) -> AdsClient:
        creds = grpc.ssl_channel_credentials(
            roots or tls_mesh.ca.pem,
            leaf.key_pem if leaf else None,
            leaf.chain_pem if leaf else None,
        )
        channel = grpc.aio.secure_channel(
            f"127.0.0.1:{tls_mesh.port}",
            creds,
            options=[("grpc.use_local_subchannel_pool", 1)],  # a connection of its own
        )
        client = AdsClient(channel, node_for(proxy))
        clients.append(client)
        return client

    yield open_client
    for client in clients:
        await client.close()


async def _refusal(client: AdsClient) -> grpc.aio.AioRpcError:
    """The stream's end, asserting that no DiscoveryResponse came before it."""
    with contextlib.suppress(grpc.aio.AioRpcError, asyncio.InvalidStateError):
        await client.request(CLUSTER)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await client.recv()  # a response here would fail the test: nothing may arrive
    return err.value


async def _served_serial(port: int, ca: Ca, client: Leaf, tmp_path: Path) -> int:
    """Open a raw TLS connection and return the serial of the certificate the server shows."""
    cert_file, key_file = tmp_path / "client.pem", tmp_path / "client.key"
    cert_file.write_bytes(client.chain_pem)
    key_file.write_bytes(client.key_pem)
    ctx = ssl.create_default_context(cadata=ca.pem.decode())
    ctx.load_cert_chain(cert_file, key_file)
    ctx.set_alpn_protocols(["h2"])
    _, writer = await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname="localhost"),
        TIMEOUT,
    )
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        return x509.load_der_x509_certificate(der).serial_number
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(writer.wait_closed(), 1.0)


# --- tests -----------------------------------------------------------------------------


async def test_a_proxy_with_its_own_identity_gets_its_config(
    tls_mesh: Mesh, connect: Callable[..., AdsClient]
) -> None:
    client = connect(tls_mesh.ca.issue(uri=ORDERS), ORDERS_PROXY)
    got = await client.initial_sync(CONFIG)
    assert got[0].names == ["a"]
    assert await tls_mesh.server.wait_synced(tls_mesh.source.generation, timeout=TIMEOUT)
    assert not tls_mesh.server.rejections


async def test_claiming_another_service_account_is_denied_before_any_response(
    tls_mesh: Mesh, connect: Callable[..., AdsClient]
) -> None:
    payment = _proxy("payment")
    err = await _refusal(connect(tls_mesh.ca.issue(uri=ORDERS), payment))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    assert tls_mesh.server.counters.streams_opened == 0
    assert tls_mesh.server.counters.pushes.total() == 0
    [rejection] = tls_mesh.server.rejections
    assert rejection.code == "PERMISSION_DENIED"
    assert rejection.node_id == payment.id
    assert rejection.claimed == "spiffe://cluster.local/ns/default/sa/payment"
    assert rejection.identity == ORDERS
    assert tls_mesh.server.counters.streams_rejected == 1


@pytest.mark.parametrize(
    ("san", "identity"),
    [
        (
            {"uri": "spiffe://other.example/ns/default/sa/orders"},
            "spiffe://other.example/ns/default/sa/orders",
        ),
        ({"dns": "orders.default.svc"}, ""),  # a valid chain, but no SPIFFE ID
        ({"uri": "spiffe://cluster.local/orders"}, "spiffe://cluster.local/orders"),
    ],
)
async def test_certificates_that_do_not_name_a_mesh_workload_are_denied(
    tls_mesh: Mesh, connect: Callable[..., AdsClient], san: dict[str, str], identity: str
) -> None:
    err = await _refusal(connect(tls_mesh.ca.issue(**san), ORDERS_PROXY))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    [rejection] = tls_mesh.server.rejections
    assert rejection.identity == identity


async def test_the_control_planes_check_hook_can_refuse(
    tls_mesh: Mesh, connect: Callable[..., AdsClient]
) -> None:
    seen: list[tuple[SpiffeId, str]] = []

    def refuse(identity: SpiffeId, proxy: Proxy) -> str | None:
        seen.append((identity, proxy.workload))
        return None if proxy.workload == "orders" else f"no workload {proxy.workload!r}"

    tls_mesh.refuse = refuse
    leaf = tls_mesh.ca.issue(uri=ORDERS)
    err = await _refusal(connect(leaf, _proxy("orders", workload="ledger")))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "no workload 'ledger'" in err.details()
    await connect(leaf, ORDERS_PROXY).initial_sync(CONFIG)
    assert seen == [(SpiffeId.parse(ORDERS), "ledger"), (SpiffeId.parse(ORDERS), "orders")]


@pytest.mark.parametrize("who", ["no client certificate", "a certificate from another CA"])
async def test_the_tls_handshake_refuses_unverified_clients(
    tls_mesh: Mesh, connect: Callable[..., AdsClient], who: str
) -> None:
    leaf = None if who == "no client certificate" else Ca("rogue").issue(uri=ORDERS)
    err = await _refusal(connect(leaf, ORDERS_PROXY))
    assert err.code() == grpc.StatusCode.UNAVAILABLE
    assert tls_mesh.server.counters.streams_opened == 0
    assert not tls_mesh.server.rejections  # never reached the handler


async def test_serving_certificate_rotates_without_dropping_streams(
    tls_mesh: Mesh,
    connect: Callable[..., AdsClient],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    leaf = tls_mesh.ca.issue(uri=ORDERS)
    old = connect(leaf, ORDERS_PROXY)
    await old.initial_sync(CONFIG)
    first = tls_mesh.serving
    assert await _served_serial(tls_mesh.port, tls_mesh.ca, leaf, tmp_path) == (
        x509.load_pem_x509_certificate(first.chain_pem).serial_number
    )

    tls_mesh.serving = tls_mesh.ca.serving(2)
    rotated = x509.load_pem_x509_certificate(tls_mesh.serving.chain_pem).serial_number
    assert await _served_serial(tls_mesh.port, tls_mesh.ca, leaf, tmp_path) == rotated

    tls_mesh.serving = ServingCredentials(b"garbage", ("garbage",), ("garbage",), NOW, 3)  # skipped
    assert await _served_serial(tls_mesh.port, tls_mesh.ca, leaf, tmp_path) == rotated
    assert await _served_serial(tls_mesh.port, tls_mesh.ca, leaf, tmp_path) == rotated
    unusable = [r for r in caplog.records if "version 3 are unusable" in r.getMessage()]
    assert len(unusable) == 1  # said once, not on every handshake
    assert b"garbage" not in caplog.text.encode()

    gen = tls_mesh.source.set({ORDERS_PROXY.id: mesh({"a": [8001, 8002]}, route_to="a")})
    [eds] = await old.recv_types(ENDPOINT)  # the stream made before the rotation still works
    await old.ack(eds)
    assert await tls_mesh.server.wait_synced(gen, timeout=TIMEOUT)


async def test_a_new_root_in_the_trust_bundle_admits_its_workloads(
    tls_mesh: Mesh, connect: Callable[..., AdsClient]
) -> None:
    new_root = Ca("plait test root 2")
    old_leaf = tls_mesh.ca.issue(uri=ORDERS)
    old_stream = connect(old_leaf, ORDERS_PROXY)
    await old_stream.initial_sync(CONFIG)

    bundle = tls_mesh.ca.pem + new_root.pem
    tls_mesh.serving = tls_mesh.ca.serving(2, bundle)
    await connect(new_root.issue(uri=ORDERS), ORDERS_PROXY).initial_sync(CONFIG)
    await connect(old_leaf, ORDERS_PROXY).initial_sync(CONFIG)  # old root still trusted
    assert not tls_mesh.server.rejections
