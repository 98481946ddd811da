"""Client TLS: DestinationRule `tls` → the upstream transport socket (TLS origination).

`DISABLE` (or no `tls`) leaves connections in plain text. `SIMPLE` originates TLS and
`MUTUAL` also presents a client certificate. Credential files are named by path and read
by Envoy, never by plait: `caCertificates` (default: the system bundle, as Istio's
"system"), `caCrl`, `clientCertificate`, `privateKey`. `subjectAltNames` must match the
server certificate (DNS names, or URIs for `spiffe://` identities); `insecureSkipVerify`
turns verification off. Without `sni` Envoy sends the request's host as SNI and, when
verifying without `subjectAltNames`, checks the certificate against it (istiod's
auto-SNI / auto SAN validation). `ISTIO_MUTUAL` (the mesh's own certificates, over SDS)
is built by `mtls`; `credentialName` is not applied.
"""

from __future__ import annotations

from collections.abc import Iterable

from envoy.config.core.v3 import base_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, tls_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2 as hpo_pb2
from envoy.type.matcher.v3 import string_pb2

from plait.api.destinationrule import ClientTLSSettings

TLS_SOCKET = "envoy.transport_sockets.tls"
SYSTEM_CA = "/etc/ssl/certs/ca-certificates.crt"  # Debian/Ubuntu/Alpine system bundle
ORIGINATING = ("SIMPLE", "MUTUAL")

SanMatcher = common_pb2.SubjectAltNameMatcher


def originates(tls: ClientTLSSettings | None) -> bool:
    return tls is not None and tls.mode in ORIGINATING


def san_matchers(sans: Iterable[str]) -> list[common_pb2.SubjectAltNameMatcher]:
    """Exact matchers: URI for `spiffe://` identities, DNS for anything else."""
    return [
        SanMatcher(
            san_type=SanMatcher.URI if san.startswith("spiffe://") else SanMatcher.DNS,
            matcher=string_pb2.StringMatcher(exact=san),
        )
        for san in sans
    ]


def transport_socket(tls: ClientTLSSettings | None) -> base_pb2.TransportSocket | None:
    if tls is None or not originates(tls):
        return None
    common = tls_pb2.CommonTlsContext()
    if not tls.insecure_skip_verify:
        validation = common.validation_context
        validation.trusted_ca.filename = tls.ca_certificates or SYSTEM_CA
        if tls.ca_crl:
            validation.crl.filename = tls.ca_crl
        validation.match_typed_subject_alt_names.extend(san_matchers(tls.subject_alt_names))
    if tls.mode == "MUTUAL" and tls.client_certificate and tls.private_key:
        cert = common.tls_certificates.add()
        cert.certificate_chain.filename = tls.client_certificate
        cert.private_key.filename = tls.private_key
    context = tls_pb2.UpstreamTlsContext(common_tls_context=common, sni=tls.sni or "")
    socket = base_pb2.TransportSocket(name=TLS_SOCKET)
    socket.typed_config.Pack(context)
    return socket


def apply_auto_sni(options: hpo_pb2.HttpProtocolOptions, tls: ClientTLSSettings | None) -> None:
    """Without an explicit `sni`, take SNI (and the name to verify) from the request's host."""
    if tls is None or not originates(tls) or tls.sni:
        return
    options.upstream_http_protocol_options.auto_sni = True
    if not tls.insecure_skip_verify and not tls.subject_alt_names:
        options.upstream_http_protocol_options.auto_san_validation = True
