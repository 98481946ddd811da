"""Mesh mTLS in translation: SDS secrets, auto mTLS clusters and EDS metadata, DestinationRule
tls modes, inbound listeners per PeerAuthentication mode, XFCC, and Envoy's verdict."""

from __future__ import annotations

from pathlib import Path

import pytest
from envoy.config.core.v3 import base_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.extensions.filters.http.rbac.v3 import rbac_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.transport_sockets.raw_buffer.v3 import raw_buffer_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, secret_pb2, tls_pb2
from test_translate_envoy_validate import assert_envoy_accepts
from test_translate_gatewaylisteners import TWO_SERVERS
from test_translate_gatewaylisteners import mesh as gateway_mesh
from translate_kit import (
    REVIEWS,
    REVIEWS_SERVICE,
    chain_hcm,
    clusters,
    gateway,
    hcm,
    hcms,
    instance,
    listeners,
    load_assignments,
    sidecar,
    snapshot,
)

from plait.api.security import MtlsMode
from plait.model.labels import Labels
from plait.model.registry import PortMap, ServicePort, WorkloadInstance
from plait.translate import listeners as listener_builders
from plait.translate import mtls, typeurls
from plait.translate.gateway import gateway_port_plans
from plait.translate.gatewaylisteners import port_listener
from plait.translate.proxy import Translator
from plait.translate.resource import ProxyConfig, Resource
from policykit import peer_authentication

HCM = hcm_pb2.HttpConnectionManager
SAN = common_pb2.SubjectAltNameMatcher
TD = "spiffe://cluster.local"

MESH = (
    REVIEWS_SERVICE
    + """apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
---
apiVersion: v1
kind: Service
metadata: {name: grpc}
spec:
  selector: {app: grpc}
  ports: [{name: grpc, port: 9000}]
"""
)

HTTP = ServicePort("http", 8080)
V1 = instance("reviews-v1-0", 20001, app="reviews", version="v1")
V2 = WorkloadInstance(
    name="reviews-v2-0",
    workload="reviews-v2",
    namespace="default",
    labels=Labels.of({"app": "reviews", "version": "v2"}),
    service_account="reviews-v2",
    address="127.0.0.1",
    ports=PortMap.all_to(20002),
)
PLAIN = WorkloadInstance(
    name="reviews-legacy-0",
    workload="reviews-legacy",
    namespace="default",
    labels=Labels.of({"app": "reviews", "version": "legacy"}),
    service_account="legacy",
    address="127.0.0.1",
    ports=PortMap.all_to(20003),
    sidecar=False,
)


def pa(name: str, namespace: str, spec: str) -> str:
    return peer_authentication(name, spec, namespace)


def dr_tls(tls: str, host: str = "reviews") -> str:
    return f"""---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: tls, namespace: default}}
spec:
  host: {host}
  trafficPolicy: {{tls: {tls}}}
"""


def config(text: str = MESH, instances: tuple[WorkloadInstance, ...] = (V1, V2, PLAIN)):  # type: ignore[no-untyped-def]
    return Translator(snapshot(text, instances)).config_for(sidecar())


def outbound(port: int = 8080, subset: str = "", host: str = REVIEWS) -> str:
    return f"outbound|{port}|{subset}|{host}"


def upstream(socket: base_pb2.TransportSocket) -> tls_pb2.UpstreamTlsContext:
    assert socket.name == "envoy.transport_sockets.tls"
    out = tls_pb2.UpstreamTlsContext()
    assert socket.typed_config.Unpack(out)
    return out


def downstream(chain: listener_components_pb2.FilterChain) -> tls_pb2.DownstreamTlsContext:
    assert chain.transport_socket.name == "envoy.transport_sockets.tls"
    out = tls_pb2.DownstreamTlsContext()
    assert chain.transport_socket.typed_config.Unpack(out)
    return out


def sans(context: tls_pb2.UpstreamTlsContext) -> list[tuple[int, str]]:
    combined = context.common_tls_context.combined_validation_context
    return [
        (m.san_type, m.matcher.exact)
        for m in combined.default_validation_context.match_typed_subject_alt_names
    ]


def tls_modes(cla: endpoint_pb2.ClusterLoadAssignment) -> dict[int, str | None]:
    """Endpoint port → its `tlsMode` EDS metadata (None when unlabelled)."""
    out: dict[int, str | None] = {}
    for lb in cla.endpoints[0].lb_endpoints:
        meta = lb.metadata.filter_metadata.get("envoy.transport_socket_match")
        out[lb.endpoint.address.socket_address.port_value] = (
            meta.fields["tlsMode"].string_value if meta is not None else None
        )
    return out


# --- secrets and contexts -------------------------------------------------------------------


def assert_sds(config: secret_pb2.SdsSecretConfig, name: str) -> None:
    assert config.name == name
    source = config.sds_config.api_config_source
    assert source.api_type == source.GRPC
    (grpc,) = source.grpc_services
    assert grpc.envoy_grpc.cluster_name == "sds-grpc"
    assert config.sds_config.initial_fetch_timeout.ToSeconds() == 0  # wait for the agent
    assert config.sds_config.HasField("initial_fetch_timeout")


def test_upstream_context_presents_default_and_verifies_rootca_and_the_peer_ids() -> None:
    ctx = mtls.upstream_context([f"{TD}/ns/default/sa/a"], "outbound_.80_._.a")
    common = ctx.common_tls_context
    (cert,) = common.tls_certificate_sds_secret_configs
    assert_sds(cert, "default")
    assert_sds(common.combined_validation_context.validation_context_sds_secret_config, "ROOTCA")
    assert sans(ctx) == [(SAN.URI, f"{TD}/ns/default/sa/a")]
    assert ctx.sni == "outbound_.80_._.a"
    assert list(common.alpn_protocols) == ["istio"]
    assert common.tls_params.tls_minimum_protocol_version == common_pb2.TlsParameters.TLSv1_2
    assert list(mtls.upstream_context([], "x", http2=True).common_tls_context.alpn_protocols) == [
        "istio",
        "h2",
    ]


def test_downstream_context_requires_a_mesh_client_certificate() -> None:
    ctx = mtls.downstream_context()
    assert ctx.require_client_certificate.value is True
    common = ctx.common_tls_context
    (cert,) = common.tls_certificate_sds_secret_configs
    assert_sds(cert, "default")
    combined = common.combined_validation_context
    assert_sds(combined.validation_context_sds_secret_config, "ROOTCA")
    assert not combined.default_validation_context.match_typed_subject_alt_names  # any peer
    assert list(common.alpn_protocols) == ["h2", "http/1.1"]


def test_identities_are_the_sidecar_endpoints_service_accounts() -> None:
    eps = [V1.endpoint(HTTP), V2.endpoint(HTTP), PLAIN.endpoint(HTTP), V1.endpoint(HTTP)]
    assert mtls.identities(eps, "example.org") == (
        "spiffe://example.org/ns/default/sa/reviews",
        "spiffe://example.org/ns/default/sa/reviews-v2",
    )


# --- clusters and endpoints -----------------------------------------------------------------


def test_auto_mtls_cluster_has_socket_matches_for_mtls_and_plain_text() -> None:
    found = clusters(config())
    c = found[outbound()]
    assert not c.HasField("transport_socket")
    assert [m.name for m in c.transport_socket_matches] == ["tlsMode-istio", "tlsMode-disabled"]
    istio, plain = c.transport_socket_matches
    assert dict(istio.match) == {"tlsMode": "istio"}
    assert dict(plain.match) == {}
    assert plain.transport_socket.name == "envoy.transport_sockets.raw_buffer"
    assert plain.transport_socket.typed_config.Is(raw_buffer_pb2.RawBuffer.DESCRIPTOR)
    ctx = upstream(istio.transport_socket)
    assert ctx.sni == f"outbound_.8080_._.{REVIEWS}"
    assert sans(ctx) == [  # the sidecars' identities; the legacy replica has none
        (SAN.URI, f"{TD}/ns/default/sa/reviews"),
        (SAN.URI, f"{TD}/ns/default/sa/reviews-v2"),
    ]
    v1 = found[outbound(subset="v1")]
    assert upstream(v1.transport_socket_matches[0].transport_socket).sni == (
        f"outbound_.8080_.v1_.{REVIEWS}"
    )
    h2 = found[outbound(9000, host="grpc.default.svc.cluster.local")]
    alpn = upstream(h2.transport_socket_matches[0].transport_socket).common_tls_context
    assert list(alpn.alpn_protocols) == ["istio", "h2"]


def test_sidecar_endpoints_are_labelled_for_mtls() -> None:
    eds = load_assignments(config())
    assert tls_modes(eds[outbound()]) == {20001: "istio", 20002: "istio", 20003: None}
    assert tls_modes(eds[outbound(subset="v2")]) == {20002: "istio"}


def test_peer_authentication_disable_keeps_endpoints_in_plain_text() -> None:
    v2_off = pa(
        "v2",
        "default",
        "{selector: {matchLabels: {version: v2}}, portLevelMtls: {8080: {mode: DISABLE}}}",
    )
    eds = load_assignments(config(MESH + v2_off))
    assert tls_modes(eds[outbound()]) == {20001: "istio", 20002: None, 20003: None}
    eds = load_assignments(config(MESH + pa("plain", "default", "{mtls: {mode: DISABLE}}")))
    assert tls_modes(eds[outbound()]) == {20001: None, 20002: None, 20003: None}
    # the cluster still offers mTLS: the decision is per endpoint
    assert clusters(config(MESH + v2_off))[outbound()].transport_socket_matches


def test_port_level_mtls_is_keyed_by_the_target_port() -> None:
    service = """apiVersion: v1
kind: Service
metadata: {name: reviews}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 8080, targetPort: 9080}]
"""
    off = "{selector: {matchLabels: {app: reviews}}, portLevelMtls: {%d: {mode: DISABLE}}}"
    eds = load_assignments(config(service + pa("p", "default", off % 9080), (V1,)))
    assert tls_modes(eds[outbound()]) == {20001: None}
    eds = load_assignments(config(service + pa("p", "default", off % 8080), (V1,)))
    assert tls_modes(eds[outbound()]) == {20001: "istio"}


def test_istio_mutual_always_uses_mtls_with_its_sni_and_sans() -> None:
    text = MESH + dr_tls("{mode: ISTIO_MUTUAL, sni: reviews.mesh, subjectAltNames: [spiffe://x/y]}")
    c = clusters(config(text))[outbound()]
    assert not c.transport_socket_matches
    ctx = upstream(c.transport_socket)
    assert ctx.sni == "reviews.mesh"
    assert sans(ctx) == [(SAN.URI, "spiffe://x/y")]
    assert tls_modes(load_assignments(config(text))[outbound()]) == {
        20001: "istio",
        20002: "istio",
        20003: "istio",  # as istiod: the DestinationRule says every endpoint speaks mTLS
    }
    defaults = upstream(
        clusters(config(MESH + dr_tls("{mode: ISTIO_MUTUAL}")))[outbound()].transport_socket
    )
    assert defaults.sni == f"outbound_.8080_._.{REVIEWS}"
    assert len(sans(defaults)) == 2


def test_destination_rule_disable_is_plain_text_even_to_sidecars() -> None:
    text = MESH + dr_tls("{mode: DISABLE}")
    c = clusters(config(text))[outbound()]
    assert not c.HasField("transport_socket") and not c.transport_socket_matches
    assert set(tls_modes(load_assignments(config(text))[outbound()]).values()) == {None}


def test_destination_rule_simple_keeps_its_own_tls() -> None:
    c = clusters(config(MESH + dr_tls("{mode: SIMPLE, sni: reviews.example.com}")))[outbound()]
    assert not c.transport_socket_matches
    ctx = upstream(c.transport_socket)
    assert ctx.sni == "reviews.example.com"
    assert not ctx.common_tls_context.tls_certificate_sds_secret_configs


ENTRIES = """apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: external}
spec:
  hosts: [api.example.com]
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}]
  endpoints: [{address: 10.0.0.1}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: dns}
spec:
  hosts: [dns.example.com]
  resolution: DNS
  location: MESH_INTERNAL
  ports: [{number: 80, name: http, protocol: HTTP}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: vm}
spec:
  hosts: [vm.internal]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}]
  endpoints: [{address: 10.0.0.2}]
"""


def test_no_auto_mtls_outside_the_mesh() -> None:
    found = clusters(config(ENTRIES, ()))
    assert not found[outbound(80, host="api.example.com")].transport_socket_matches
    assert not found[outbound(80, host="dns.example.com")].transport_socket_matches
    # in the mesh, but its endpoints have no sidecar: offered, never chosen
    assert found[outbound(80, host="vm.internal")].transport_socket_matches
    cla = load_assignments(config(ENTRIES, ()))[outbound(80, host="vm.internal")]
    assert not cla.endpoints[0].lb_endpoints[0].metadata.filter_metadata


def test_an_endpoint_change_with_known_identities_leaves_clusters_alone() -> None:
    """SANs come from endpoints, so CDS changes only when a new identity appears."""
    proxy = sidecar()
    one = Translator(snapshot(MESH, [V1])).config_for(proxy)
    same_sa = instance("reviews-v1-1", 20009, app="reviews", version="v1")
    two = Translator(snapshot(MESH, [V1, same_sa])).config_for(proxy)
    assert one.version(typeurls.CLUSTER) == two.version(typeurls.CLUSTER)
    assert one.version(typeurls.ENDPOINT) != two.version(typeurls.ENDPOINT)
    new_sa = Translator(snapshot(MESH, [V1, V2])).config_for(proxy)
    assert one.version(typeurls.CLUSTER) != new_sa.version(typeurls.CLUSTER)


# --- listeners ------------------------------------------------------------------------------


def inbound(mode: MtlsMode, *filters: hcm_pb2.HttpFilter) -> listener_pb2.Listener:
    return listener_builders.inbound_listener("127.0.0.1", 15006, "inbound|9080||", mode, filters)


def assert_mtls_chain(chain: listener_components_pb2.FilterChain) -> None:
    assert chain.name == "inbound-mtls"
    assert chain.filter_chain_match.transport_protocol == "tls"
    assert downstream(chain).require_client_certificate.value is True
    h = chain_hcm(chain)
    assert h.forward_client_cert_details == HCM.APPEND_FORWARD
    details = h.set_current_client_cert_details
    # no DNS=: mesh certificates have no DNS SANs, and an empty field is re-read per request
    assert (details.subject.value, details.uri, details.dns) == (True, True, False)
    assert not details.cert


def assert_plaintext_chain(chain: listener_components_pb2.FilterChain) -> None:
    assert chain.name == "inbound-plaintext"
    assert not chain.HasField("transport_socket")
    h = chain_hcm(chain)
    assert h.forward_client_cert_details == HCM.SANITIZE  # a caller cannot forge XFCC
    assert not h.HasField("set_current_client_cert_details")


def test_strict_inbound_has_only_the_mtls_chain() -> None:
    lis = inbound(MtlsMode.STRICT)
    assert [f.name for f in lis.listener_filters] == ["envoy.filters.listener.tls_inspector"]
    (chain,) = lis.filter_chains
    assert_mtls_chain(chain)  # plain text matches no chain: Envoy closes the connection


def test_permissive_inbound_has_an_mtls_chain_and_a_plain_text_chain() -> None:
    lis = inbound(MtlsMode.PERMISSIVE)
    assert [f.name for f in lis.listener_filters] == ["envoy.filters.listener.tls_inspector"]
    mtls_chain, plain = lis.filter_chains
    assert_mtls_chain(mtls_chain)
    assert_plaintext_chain(plain)
    assert plain.filter_chain_match.transport_protocol == "raw_buffer"
    assert inbound(MtlsMode.UNSET) == lis


def test_disable_inbound_is_plain_text_only() -> None:
    lis = inbound(MtlsMode.DISABLE)
    assert not lis.listener_filters
    (chain,) = lis.filter_chains
    assert_plaintext_chain(chain)
    assert not chain.HasField("filter_chain_match")


def rbac_filter() -> hcm_pb2.HttpFilter:
    f = hcm_pb2.HttpFilter(name="envoy.filters.http.rbac")
    f.typed_config.Pack(rbac_pb2.RBAC())
    return f


@pytest.mark.parametrize("mode", [MtlsMode.STRICT, MtlsMode.PERMISSIVE, MtlsMode.DISABLE])
def test_security_filters_come_first_in_every_inbound_chain(mode: MtlsMode) -> None:
    for h in hcms(inbound(mode, rbac_filter())):
        assert [f.name for f in h.http_filters] == [
            "envoy.filters.http.rbac",
            "envoy.filters.http.local_ratelimit",  # no fault, no cors: see translate.httpfilters
            "envoy.filters.http.router",
        ]


def test_security_filters_come_first_on_gateway_ports(tmp_path: Path) -> None:
    lis = listener_builders.gateway_listener(80, "127.0.0.1", 8080, [rbac_filter()])
    assert hcm(lis).http_filters[0].name == "envoy.filters.http.rbac"
    assert hcm(listener_builders.gateway_listener(80, "127.0.0.1", 8080)).http_filters[0].name == (
        "envoy.filters.http.fault"
    )
    (https,) = [p for p in gateway_port_plans(gateway_mesh(tmp_path, TWO_SERVERS)) if p.tls]
    lis = port_listener(https, "127.0.0.1", 9443, [rbac_filter()])
    assert len(lis.filter_chains) == 2
    for h in hcms(lis):
        assert h.http_filters[0].name == "envoy.filters.http.rbac"
        assert h.forward_client_cert_details == HCM.SANITIZE_SET  # MUTUAL: the client's cert


def test_outbound_sanitizes_and_gateway_sanitizes_then_sets() -> None:
    out = hcm(listener_builders.outbound_listener("127.0.0.1", 15001))
    assert out.forward_client_cert_details == HCM.SANITIZE
    gw = hcm(listener_builders.gateway_listener(80, "127.0.0.1", 8080))
    assert gw.forward_client_cert_details == HCM.SANITIZE_SET
    details = gw.set_current_client_cert_details
    assert (details.subject.value, details.uri, details.dns, details.cert) == (
        True,
        True,
        True,
        True,
    )


def test_the_sidecar_inbound_listener_follows_peer_authentication() -> None:
    def chains(text: str) -> list[str]:
        lis = listeners(config(MESH + text, (V1,)))["virtualInbound"]
        return [c.name for c in lis.filter_chains]

    proxy_is = "{selector: {matchLabels: {app: frontend}}, mtls: {mode: %s}}"
    assert chains("") == ["inbound-mtls", "inbound-plaintext"]
    assert chains(pa("mesh", "istio-system", "{mtls: {mode: STRICT}}")) == ["inbound-mtls"]
    assert chains(pa("fe", "default", proxy_is % "DISABLE")) == ["inbound-plaintext"]
    assert chains(pa("ns", "team", "{mtls: {mode: STRICT}}")) == [  # another namespace
        "inbound-mtls",
        "inbound-plaintext",
    ]


# --- Envoy's verdict ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "extra",
    [
        pa("mesh", "istio-system", "{mtls: {mode: STRICT}}"),
        "",
        pa("mesh", "istio-system", "{mtls: {mode: DISABLE}}"),
        dr_tls("{mode: ISTIO_MUTUAL, sni: r.mesh, subjectAltNames: [spiffe://x/y, r.example]}"),
    ],
    ids=["strict", "permissive", "disable", "istio-mutual"],
)
def test_envoy_accepts_mtls_listeners_and_clusters(tmp_path: Path, extra: str) -> None:
    translator = Translator(snapshot(MESH + extra, (V1, V2, PLAIN)))
    sidecar_config = translator.config_for(sidecar())
    chains = [c.name for c in listeners(sidecar_config)["virtualInbound"].filter_chains]
    assert chains == (
        ["inbound-mtls"]
        if "STRICT" in extra
        else ["inbound-plaintext"]
        if "DISABLE" in extra
        else ["inbound-mtls", "inbound-plaintext"]
    )
    reviews = clusters(sidecar_config)[outbound()]
    assert reviews.transport_socket_matches or reviews.HasField("transport_socket")
    assert_envoy_accepts(tmp_path, sidecar_config)
    assert_envoy_accepts(tmp_path, translator.config_for(gateway((80, 8080))))


def test_envoy_accepts_security_filters_in_the_inbound_chains(tmp_path: Path) -> None:
    """What the lead wires through proxy.py: the filters inside both inbound chains."""
    base = Translator(snapshot(MESH, (V1,))).config_for(sidecar())
    (table,) = [name for name in base.resources(typeurls.ROUTE) if name.startswith("inbound|")]
    lis = listener_builders.inbound_listener(
        "127.0.0.1", 21001, table, MtlsMode.PERMISSIVE, [rbac_filter()]
    )
    patched = ProxyConfig.layered(base, [Resource.pack(lis.name, lis)])
    assert_envoy_accepts(tmp_path, patched)
