"""Workload identity in a running mesh with 20-second certificates: they rotate under
continuous traffic with no failed request; a workload cannot get another workload's
certificate nor its xDS configuration; the CA key is private to its owner."""

from __future__ import annotations

import json
import os
import ssl
import stat
import time
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from google.protobuf import struct_pb2
from labkit import Lab
from meshkit import Load, eventually, get_json, plait
from seckit import spiffe

from plait.model.labels import Labels
from plait.model.proxy import Proxy, ProxyKind, node_id, to_node_metadata

UP_ARGS = ("--cert-ttl", "20s")
CDS = "type.googleapis.com/envoy.config.cluster.v3.Cluster"


def state(lab: Lab) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((lab.mesh.root / ".plait" / "state.json").read_text())
    return data


def ca_dir(lab: Lab) -> Path:
    return lab.mesh.root / ".plait" / "ca"


def token_of(lab: Lab, instance: str) -> str:
    return (lab.mesh.root / ".plait" / "tokens" / f"{instance}.jwt").read_text().strip()


def csr_for(identity: str) -> tuple[ec.EllipticCurvePrivateKey, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(identity)]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    return key, csr.public_bytes(serialization.Encoding.PEM).decode()


async def ask_ca(lab: Lab, token: str, identity: str) -> tuple[int, dict[str, Any], Any]:
    key, csr = csr_for(identity)
    ctx = ssl.create_default_context(cafile=str(ca_dir(lab) / "root-cert.pem"))
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{state(lab)['ca']}/v1/certificates",
            json={"csr": csr},
            headers={"authorization": f"Bearer {token}"},
            ssl=ctx,
        ) as r,
    ):
        return r.status, await r.json(content_type=None), key


def cert_serial(lab: Lab, workload: str) -> str:
    """The serial of the workload certificate a sidecar's Envoy holds (admin /certs)."""
    certs = get_json(f"http://{lab.proxy(workload)['admin']}/certs")["certificates"]
    chains = [c for entry in certs for c in entry.get("cert_chain", [])]
    uris = [
        c["serial_number"]
        for c in chains
        for san in c.get("subject_alt_names", [])
        if san.get("uri", "").startswith("spiffe://")
    ]
    assert uris, certs
    return str(uris[0])


def test_the_ca_key_is_readable_by_its_owner_only(lab: Lab) -> None:
    keys = [p for p in ca_dir(lab).iterdir() if p.name.endswith("key.pem")]
    assert keys
    for path in keys:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path
    assert stat.S_IMODE(os.stat(ca_dir(lab)).st_mode) == 0o700


async def test_a_workload_cannot_obtain_another_workloads_certificate(lab: Lab) -> None:
    client_token = token_of(lab, "client-0")
    code, body, _ = await ask_ca(lab, client_token, spiffe("default", "echo"))
    assert code == 403, body
    assert "echo" in body["error"]
    code, body, _ = await ask_ca(lab, "not-a-token", spiffe("default", "client"))
    assert code == 401, body
    code, body, _ = await ask_ca(lab, client_token, spiffe("default", "client"))
    assert code == 200, body  # its own identity, with its own token


async def test_a_workload_cannot_obtain_another_workloads_xds_config(lab: Lab) -> None:
    code, body, key = await ask_ca(lab, token_of(lab, "client-0"), spiffe("default", "client"))
    assert code == 200, body
    root = (ca_dir(lab) / "root-cert.pem").read_bytes()
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    creds = grpc.ssl_channel_credentials(root, key_pem, "".join(body["certChain"]).encode())

    async def first_response(
        workload: str, service_account: str
    ) -> discovery_pb2.DiscoveryResponse:
        proxy = Proxy(
            id=node_id(ProxyKind.SIDECAR, f"{workload}-9", "default"),
            kind=ProxyKind.SIDECAR,
            workload=workload,
            service_account=service_account,
            labels=Labels.of({"app": workload, "version": "v1"}),
        )
        metadata = struct_pb2.Struct()
        metadata.update(to_node_metadata(proxy))
        request = discovery_pb2.DiscoveryRequest(
            node=base_pb2.Node(id=proxy.id, cluster=workload, metadata=metadata), type_url=CDS
        )
        async with grpc.aio.secure_channel(state(lab)["xds"], creds) as channel:
            stream = ads_pb2_grpc.AggregatedDiscoveryServiceStub(
                channel
            ).StreamAggregatedResources()
            await stream.write(request)
            response: discovery_pb2.DiscoveryResponse = await stream.read()
            stream.cancel()
            return response

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await first_response("echo", "echo")
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    own = await first_response("client", "client")  # its own identity: served
    assert own.type_url == CDS and own.resources


async def test_certificates_rotate_under_traffic_without_a_failed_request(lab: Lab) -> None:
    # new upstream connections all the time, so handshakes meet every rotated certificate
    lab.apply(
        "echo-fresh",
        """apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: echo-fresh}
spec:
  host: echo
  trafficPolicy: {connectionPool: {http: {maxRequestsPerConnection: 3}}}
""",
    )
    first = {w: cert_serial(lab, w) for w in ("client", "echo-v1", "echo-v2")}
    start = time.monotonic()
    async with Load("http://echo:8080/rotate", workers=4, proxy=lab.client_proxy) as load:
        await eventually(
            lambda: all(cert_serial(lab, w) != s for w, s in first.items()),
            45,
            "every sidecar to hold a renewed certificate",
            interval=0.5,
        )
    assert load.failures == [], load.failures[:5]
    assert load.total > 200, load.codes
    assert time.monotonic() - start < 60


def sds_updates(lab: Lab, secret: str) -> dict[str, int]:
    """Per proxy, how many times its Envoy took a new version of an SDS secret."""
    out = {}
    for p in lab.mesh.status_proxies():
        stats = get_json(f"http://{p['admin']}/stats?format=json&filter=^sds\\.")["stats"]
        out[p["name"]] = sum(
            s.get("value", 0) for s in stats if s.get("name") == f"sds.{secret}.update_success"
        )
    return out


async def test_the_root_rotates_under_traffic_without_a_failed_request(lab: Lab) -> None:
    root = str(lab.mesh.root)

    async def step(name: str, *extra: str) -> None:
        before = sds_updates(lab, "ROOTCA")
        result = plait("ca", "rotate-root", root, "--step", name, *extra)
        assert result.returncode == 0, result.stdout + result.stderr
        await eventually(
            lambda: all(n > before[p] for p, n in sds_updates(lab, "ROOTCA").items()),
            30,
            f"every Envoy to take the trust bundle of step {name}",
            interval=0.5,
        )

    async with Load("http://echo:8080/root", workers=4, proxy=lab.client_proxy) as load:
        await step("add")  # the new root is trusted everywhere before it signs anything
        serials = {w: cert_serial(lab, w) for w in ("client", "echo-v1", "echo-v2")}
        await step("switch")  # it signs now: every agent renews
        await eventually(
            lambda: all(cert_serial(lab, w) != s for w, s in serials.items()),
            30,
            "every sidecar to hold a certificate from the new root",
            interval=0.5,
        )
        await step("finish", "--force")  # the old root is no longer trusted
        after = load.total
        await eventually(lambda: load.total > after + 50, 10, "traffic after the rotation")
    assert load.failures == [], load.failures[:5]
    new_root = (ca_dir(lab) / "root-cert.pem").read_text()
    assert not (ca_dir(lab) / "extra-roots.pem").exists()
    code, body, _ = await ask_ca(lab, token_of(lab, "client-0"), spiffe("default", "client"))
    assert code == 200 and body["trustBundle"] == [new_root]


def test_no_key_or_token_reaches_a_log_file(lab: Lab) -> None:
    """Last in the module: the logs then cover start, refusals and both rotations."""
    run = lab.mesh.root / ".plait"
    tokens = [p.read_text().strip() for p in (run / "tokens").glob("*.jwt")]
    assert tokens
    logs = [p for p in run.rglob("*.log") if p.is_file()]
    assert len(logs) > 3
    for log in logs:
        text = log.read_text(errors="replace")
        assert "PRIVATE KEY" not in text, log
        assert not any(t in text for t in tokens), log
