"""The gateway's listeners: plain-text ports, and HTTPS ports with one TLS chain per server."""

from __future__ import annotations

from pathlib import Path

from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, tls_pb2
from test_translate_envoy_validate import assert_envoy_accepts, envoy_validate
from translate_kit import REVIEWS_SERVICE, gateway, listeners, routes

from plait.api import load_text
from plait.model.snapshot import MeshSnapshot, build_snapshot
from plait.translate.gateway import gateway_port_plans
from plait.translate.gatewaylisteners import TLS_INSPECTOR, port_listener
from plait.translate.proxy import Translator
from testpki import self_signed


def mesh(directory: Path, servers: str) -> MeshSnapshot:
    text = f"""{REVIEWS_SERVICE}
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: web}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
{servers}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: web}}
spec:
  hosts: ["*"]
  gateways: [web]
  http: [{{route: [{{destination: {{host: reviews}}}}]}}]
"""
    result = load_text(text, str(directory / "gateway.yaml"))
    assert not result.errors, [str(m) for m in result.errors]
    return build_snapshot(result.resources, (), 1)


TWO_SERVERS = """  - port: {number: 443, name: https-a, protocol: HTTPS}
    hosts: [a.example.com]
    tls: {mode: SIMPLE, serverCertificate: a.crt, privateKey: a.key, minProtocolVersion: TLSV1_3}
  - port: {number: 443, name: https-any, protocol: HTTPS}
    hosts: ["*"]
    tls: {mode: MUTUAL, serverCertificate: any.crt, privateKey: any.key, caCertificates: ca.crt}
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*"]
    tls: {httpsRedirect: true}
"""


def https_listener(tmp_path: Path) -> listener_pb2.Listener:
    (plan,) = [p for p in gateway_port_plans(mesh(tmp_path, TWO_SERVERS)) if p.tls]
    return port_listener(plan, "127.0.0.1", 9443)


def chain_tls(chain: object) -> tls_pb2.DownstreamTlsContext:
    out = tls_pb2.DownstreamTlsContext()
    assert chain.transport_socket.typed_config.Unpack(out)  # type: ignore[attr-defined]
    return out


def test_an_https_port_inspects_sni_and_has_a_chain_per_server(tmp_path: Path) -> None:
    lis = https_listener(tmp_path)
    assert (lis.name, lis.address.socket_address.port_value) == ("0.0.0.0_443", 9443)
    assert [f.name for f in lis.listener_filters] == [TLS_INSPECTOR]
    assert [list(c.filter_chain_match.server_names) for c in lis.filter_chains] == [
        ["a.example.com"],
        [],  # hosts ["*"]: the default chain
    ]
    rds = []
    for chain in lis.filter_chains:
        hcm = hcm_pb2.HttpConnectionManager()
        assert chain.filters[0].typed_config.Unpack(hcm)
        rds.append(hcm.rds.route_config_name)
        assert chain.transport_socket.name == "envoy.transport_sockets.tls"
    assert rds == ["https.443.https-a.web.default", "https.443.https-any.web.default"]


def test_simple_tls_names_the_certificate_files_relative_to_the_gateway_file(
    tmp_path: Path,
) -> None:
    simple = chain_tls(https_listener(tmp_path).filter_chains[0])
    (cert,) = simple.common_tls_context.tls_certificates
    assert cert.certificate_chain.filename == str(tmp_path / "a.crt")
    assert cert.private_key.filename == str(tmp_path / "a.key")
    assert list(simple.common_tls_context.alpn_protocols) == ["h2", "http/1.1"]
    params = simple.common_tls_context.tls_params
    assert params.tls_minimum_protocol_version == common_pb2.TlsParameters.TLSv1_3
    assert not simple.common_tls_context.HasField("validation_context")
    assert not simple.require_client_certificate.value


def test_mutual_tls_requires_a_client_certificate_signed_by_the_ca(tmp_path: Path) -> None:
    mutual = chain_tls(https_listener(tmp_path).filter_chains[1])
    assert mutual.require_client_certificate.value is True
    trusted = mutual.common_tls_context.validation_context.trusted_ca
    assert trusted.filename == str(tmp_path / "ca.crt")


def test_envoy_accepts_the_gateway_with_https_and_redirect(tmp_path: Path) -> None:
    for name in ("a", "any", "ca"):
        self_signed(tmp_path, name, ".crt")
    config = Translator(mesh(tmp_path, TWO_SERVERS)).config_for(gateway((80, 8080), (443, 8443)))
    assert set(listeners(config)) == {"0.0.0.0_80", "0.0.0.0_443"}
    assert set(routes(config)) == {
        "http.80",
        "https.443.https-a.web.default",
        "https.443.https-any.web.default",
    }
    assert_envoy_accepts(tmp_path, config)


def test_envoy_rejects_the_gateway_when_a_certificate_file_is_missing(tmp_path: Path) -> None:
    """The validation above is not vacuous: Envoy does read the files translation names."""
    for name in ("any", "ca"):  # no a.crt / a.key
        self_signed(tmp_path, name, ".crt")
    config = Translator(mesh(tmp_path, TWO_SERVERS)).config_for(gateway((443, 8443)))
    result = envoy_validate(tmp_path, config)
    assert result.returncode != 0
    assert f"{tmp_path}/a." in result.stdout + result.stderr
