"""Mesh mTLS: the Envoy side of workload certificates, as istiod builds it.

**Secrets.** Envoy fetches its certificate (`default`) and trust bundle (`ROOTCA`) over SDS
from its agent, through the bootstrap's static cluster `sds-grpc`. The configs carry
`initial_fetch_timeout: 0s` (as istiod's): a cluster or listener that needs them stays
warming until the agent answers rather than going live without a certificate.

**Upstream** (pilot/pkg/networking/core/cluster_tls.go). A cluster to a mesh service gets
an UpstreamTlsContext presenting `default`, verifying the peer against `ROOTCA` and one
of the destination's SPIFFE IDs (the service accounts of its endpoints), with SNI
`outbound_.PORT_.SUBSET_.HOST` and ALPN `istio` (`istio`, `h2` to an HTTP/2 port).

- *Auto mTLS* (no DestinationRule `tls`): the cluster has `transport_socket_matches`:
  endpoints whose EDS metadata says `tlsMode: istio` (a sidecar whose PeerAuthentication
  mode on that port is not DISABLE, as istiod's mtls_checker decides) get mTLS, the rest
  plain text. Only for services in the mesh whose endpoints come over EDS; a
  MESH_EXTERNAL ServiceEntry, DNS or passthrough host never gets it. istiod also drops
  the matches when the service namespace's PeerAuthentication is DISABLE
  (BestEffortInferServiceMTLSMode); plait decides per endpoint only, which gives the
  same answer there and the right one when a workload-level policy overrides it.
- DestinationRule `ISTIO_MUTUAL`: always mTLS, its `sni` and `subjectAltNames` in place
  of the defaults. `DISABLE`: plain text even to sidecars. `SIMPLE`/`MUTUAL`: `clienttls`.

**Downstream** (pilot/pkg/security/authn/utils BuildInboundTLS): the inbound mTLS chain
requires a client certificate chaining to `ROOTCA` (any mesh identity: who may call is
AuthorizationPolicy's business), presents `default`, offers ALPN h2 and http/1.1.

**XFCC.** An mTLS chain appends the caller's identity to `x-forwarded-client-cert`
(APPEND_FORWARD, as istiod's inbound); a plain-text chain and the sidecar's outbound HCM
SANITIZE it, so nobody can forge one; the gateway uses istiod's gateway default,
SANITIZE_SET. https://www.envoyproxy.io/docs/envoy/latest/configuration/http/http_conn_man/headers#x-forwarded-client-cert
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import base_pb2, config_source_pb2, grpc_service_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.transport_sockets.raw_buffer.v3 import raw_buffer_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, secret_pb2, tls_pb2
from google.protobuf import duration_pb2, struct_pb2

from plait.api.destinationrule import ClientTLSSettings
from plait.api.security import MtlsMode
from plait.model.identity import CERT_SECRET, ROOT_SECRET, SDS_CLUSTER, SpiffeId, SpiffeIdError
from plait.model.peerauth import PeerAuthentications, workload_port
from plait.model.registry import Endpoint, Resolution, Service, ServicePort
from plait.translate.clienttls import TLS_SOCKET, san_matchers

RAW_BUFFER_SOCKET = "envoy.transport_sockets.raw_buffer"
SOCKET_MATCH_KEY = "envoy.transport_socket_match"  # EDS filter_metadata key Envoy reads
TLS_MODE_LABEL = "tlsMode"
ISTIO_TLS_MODE = "istio"
MTLS_MATCH = "tlsMode-istio"
PLAINTEXT_MATCH = "tlsMode-disabled"
ISTIO_MUTUAL = "ISTIO_MUTUAL"
ALPN_IN_MESH = ("istio",)
ALPN_IN_MESH_H2 = ("istio", "h2")
ALPN_DOWNSTREAM = ("h2", "http/1.1")
# istiod's inbound cipher suites (authn/utils SupportedCiphers); TLS 1.3 suites are fixed.
CIPHER_SUITES = (
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "AES256-GCM-SHA384",
    "AES128-GCM-SHA256",
)

HCM = hcm_pb2.HttpConnectionManager


# --- secrets ------------------------------------------------------------------------------


def sds_secret(name: str) -> secret_pb2.SdsSecretConfig:
    """A secret served by the agent over SDS on the bootstrap cluster `sds-grpc`."""
    return secret_pb2.SdsSecretConfig(
        name=name,
        sds_config=config_source_pb2.ConfigSource(
            api_config_source=config_source_pb2.ApiConfigSource(
                api_type=config_source_pb2.ApiConfigSource.GRPC,
                transport_api_version=config_source_pb2.V3,
                set_node_on_first_message_only=True,
                grpc_services=[
                    grpc_service_pb2.GrpcService(
                        envoy_grpc=grpc_service_pb2.GrpcService.EnvoyGrpc(cluster_name=SDS_CLUSTER)
                    )
                ],
            ),
            resource_api_version=config_source_pb2.V3,
            initial_fetch_timeout=duration_pb2.Duration(seconds=0),
        ),
    )


def _tls_params() -> common_pb2.TlsParameters:
    return common_pb2.TlsParameters(
        tls_minimum_protocol_version=common_pb2.TlsParameters.TLSv1_2,
        tls_maximum_protocol_version=common_pb2.TlsParameters.TLSv1_3,
    )


def _common(sans: Iterable[str], alpn: Sequence[str]) -> tls_pb2.CommonTlsContext:
    """Present `default`; verify the peer against `ROOTCA` (and `sans`, when given)."""
    common = tls_pb2.CommonTlsContext(
        tls_params=_tls_params(),
        tls_certificate_sds_secret_configs=[sds_secret(CERT_SECRET)],
        alpn_protocols=list(alpn),
    )
    combined = common.combined_validation_context
    combined.default_validation_context.match_typed_subject_alt_names.extend(san_matchers(sans))
    combined.validation_context_sds_secret_config.CopyFrom(sds_secret(ROOT_SECRET))
    return common


# --- upstream -----------------------------------------------------------------------------


def sni(hostname: str, port: int, subset: str = "") -> str:
    """istiod's SNI for ISTIO_MUTUAL (model.BuildDNSSrvSubsetKey)."""
    return f"outbound_.{port}_.{subset}_.{hostname}"


def identities(eps: Iterable[Endpoint], trust_domain: str) -> tuple[str, ...]:
    """The SPIFFE IDs (URIs) of the endpoints that have a sidecar, sorted, once each."""
    out: set[str] = set()
    for e in eps:
        if not e.sidecar:
            continue
        try:
            out.add(SpiffeId(trust_domain, e.namespace, e.service_account).uri)
        except SpiffeIdError:
            continue  # cannot hold a mesh certificate, so it will never match anyway
    return tuple(sorted(out))


def upstream_context(
    sans: Sequence[str], server_name: str, *, http2: bool = False
) -> tls_pb2.UpstreamTlsContext:
    alpn = ALPN_IN_MESH_H2 if http2 else ALPN_IN_MESH
    return tls_pb2.UpstreamTlsContext(common_tls_context=_common(sans, alpn), sni=server_name)


def _socket(
    name: str, config: tls_pb2.UpstreamTlsContext | tls_pb2.DownstreamTlsContext | None
) -> base_pb2.TransportSocket:
    socket = base_pb2.TransportSocket(name=name)
    socket.typed_config.Pack(config if config is not None else raw_buffer_pb2.RawBuffer())
    return socket


def upstream_socket(
    sans: Sequence[str], server_name: str, *, http2: bool = False
) -> base_pb2.TransportSocket:
    return _socket(TLS_SOCKET, upstream_context(sans, server_name, http2=http2))


def plaintext_socket() -> base_pb2.TransportSocket:
    return _socket(RAW_BUFFER_SOCKET, None)


def auto_socket_matches(
    mtls: base_pb2.TransportSocket,
) -> list[cluster_pb2.Cluster.TransportSocketMatch]:
    """mTLS to endpoints labelled `tlsMode: istio`, plain text to the rest (first match)."""
    match = struct_pb2.Struct()
    match.update({TLS_MODE_LABEL: ISTIO_TLS_MODE})
    return [
        cluster_pb2.Cluster.TransportSocketMatch(
            name=MTLS_MATCH, match=match, transport_socket=mtls
        ),
        cluster_pb2.Cluster.TransportSocketMatch(
            name=PLAINTEXT_MATCH, match=struct_pb2.Struct(), transport_socket=plaintext_socket()
        ),
    ]


def auto_mtls_applies(service: Service) -> bool:
    """In the mesh and discovered over EDS: the endpoints can be sidecars."""
    return not service.external and service.resolution in (Resolution.REGISTRY, Resolution.STATIC)


def apply_upstream(
    cluster: cluster_pb2.Cluster,
    service: Service,
    server_name: str,
    tls: ClientTLSSettings | None,
    sans: Sequence[str],
    *,
    http2: bool = False,
) -> None:
    """Mesh mTLS on an outbound cluster, per the DestinationRule `tls` in force (see the
    module docstring); `sans` are the destination's SPIFFE IDs (`identities`)."""
    if tls is not None and tls.mode == ISTIO_MUTUAL:
        socket = upstream_socket(tls.subject_alt_names or sans, tls.sni or server_name, http2=http2)
        cluster.transport_socket.CopyFrom(socket)
    elif tls is None and auto_mtls_applies(service):
        socket = upstream_socket(sans, server_name, http2=http2)
        cluster.transport_socket_matches.extend(auto_socket_matches(socket))


def endpoint_mtls(
    policies: PeerAuthentications, port: ServicePort, tls: ClientTLSSettings | None
) -> Callable[[Endpoint], bool]:
    """Which endpoints of one cluster get `tlsMode: istio` (istiod's mtls_checker): with a
    DestinationRule `tls`, all of them exactly when it is ISTIO_MUTUAL; without, those with
    a sidecar whose PeerAuthentication mode on the workload port is not DISABLE."""
    if tls is not None:
        verdict = tls.mode == ISTIO_MUTUAL
        return lambda e: verdict
    target = workload_port(port)

    def speaks_mtls(e: Endpoint) -> bool:
        return e.sidecar and policies.mode(e.namespace, e.labels, target) is not MtlsMode.DISABLE

    return speaks_mtls


def mark_mtls(lb: endpoint_components_pb2.LbEndpoint) -> None:
    """Label an EDS endpoint `tlsMode: istio`, so `auto_socket_matches` picks mTLS for it."""
    lb.metadata.filter_metadata[SOCKET_MATCH_KEY].update({TLS_MODE_LABEL: ISTIO_TLS_MODE})


# --- downstream ---------------------------------------------------------------------------


def downstream_context() -> tls_pb2.DownstreamTlsContext:
    """The inbound mTLS chain's TLS: a client certificate from the mesh is required."""
    common = _common((), ALPN_DOWNSTREAM)
    common.tls_params.cipher_suites.extend(CIPHER_SUITES)
    context = tls_pb2.DownstreamTlsContext(common_tls_context=common)
    context.require_client_certificate.value = True
    return context


def downstream_socket() -> base_pb2.TransportSocket:
    return _socket(TLS_SOCKET, downstream_context())


# --- x-forwarded-client-cert ----------------------------------------------------------------


def _details(hcm: hcm_pb2.HttpConnectionManager, *, dns: bool, cert: bool = False) -> None:
    details = hcm.set_current_client_cert_details
    details.subject.value = True
    details.uri = True
    details.dns = dns
    details.cert = cert


def set_inbound_xfcc(hcm: hcm_pb2.HttpConnectionManager, *, mtls: bool) -> None:
    """mTLS chain: append the caller's Subject and URI (SPIFFE ID); plain text: strip
    whatever the caller sent.

    istiod also asks for `DNS=`; plait does not, on purpose. The caller on this chain is a
    mesh workload whose certificate plait's CA made with one URI SAN and no DNS SANs
    (`ca.pki`), so the header is the same without it. And asking costs: Envoy caches a
    peer-certificate field only when it is non-empty, so an always-empty DNS list is
    re-parsed from the certificate on every request (3–4% of the server sidecar's
    instructions in `bench/pathcost.py`). Gateways, whose clients bring their own
    certificates, still ask (`set_gateway_xfcc`)."""
    if mtls:
        hcm.forward_client_cert_details = HCM.APPEND_FORWARD
        _details(hcm, dns=False)
    else:
        hcm.forward_client_cert_details = HCM.SANITIZE


def set_outbound_xfcc(hcm: hcm_pb2.HttpConnectionManager) -> None:
    """The app's own requests never carry an identity header onward."""
    hcm.forward_client_cert_details = HCM.SANITIZE


def set_gateway_xfcc(hcm: hcm_pb2.HttpConnectionManager) -> None:
    """istiod's gateway default: drop the client's header; set one from a client
    certificate when the server asked for one (MUTUAL)."""
    hcm.forward_client_cert_details = HCM.SANITIZE_SET
    _details(hcm, dns=True, cert=True)
