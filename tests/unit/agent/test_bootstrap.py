"""The bootstrap dict: its shape, its node metadata round trip, and Envoy's own verdict."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from envoy.config.bootstrap.v3 import bootstrap_pb2

# Registers the typed_config messages the bootstrap names in "@type" (for ParseDict).
from envoy.extensions.access_loggers.file.v3 import file_pb2  # noqa: F401
from envoy.extensions.filters.http.router.v3 import router_pb2  # noqa: F401
from envoy.extensions.filters.network.http_connection_manager.v3 import (  # noqa: F401
    http_connection_manager_pb2,
)
from envoy.extensions.resource_monitors.downstream_connections.v3 import (  # noqa: F401
    downstream_connections_pb2,
)
from envoy.extensions.transport_sockets.tls.v3 import tls_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2  # noqa: F401
from google.protobuf import json_format

from plait.agent.bootstrap import (
    PROMETHEUS_CLUSTER,
    XDS_CLUSTER,
    BootstrapOptions,
    XdsProtocol,
    bootstrap,
)
from plait.agent.envoy import find_envoy
from plait.model.identity import SDS_CLUSTER, control_plane_identity
from plait.model.labels import Labels
from plait.model.proxy import Proxy, ProxyKind, from_node_metadata, node_id

SIDECAR = Proxy(
    id=node_id(ProxyKind.SIDECAR, "reviews-v1-0", "shop"),
    kind=ProxyKind.SIDECAR,
    workload="reviews-v1",
    namespace="shop",
    service_account="reviews",
    labels=Labels.of({"app": "reviews", "version": "v1"}),
    inbound_port=15006,
    app_port=9080,
    outbound_port=15001,
)
GATEWAY = Proxy(
    id=node_id(ProxyKind.GATEWAY, "ingress", "istio-system"),
    kind=ProxyKind.GATEWAY,
    workload="ingressgateway",
    namespace="istio-system",
    gateway_ports=((80, 8080), (443, 8443)),
)


SDS_SOCKET = "/run/plait/reviews-v1-0/sds.sock"
CONTROL_PLANE = control_plane_identity("cluster.local")


def opts(proxy: Proxy = SIDECAR, host: str = "127.0.0.1", **kw: Any) -> BootstrapOptions:
    return BootstrapOptions(proxy=proxy, admin_port=15000, xds_host=host, xds_port=15010, **kw)


def parse(doc: dict[str, Any]) -> bootstrap_pb2.Bootstrap:
    """Through JSON text and protobuf, as Envoy reads it; unknown fields are an error."""
    msg = bootstrap_pb2.Bootstrap()
    json_format.Parse(json.dumps(doc), msg, ignore_unknown_fields=False)
    return msg


@pytest.mark.parametrize("proxy", [SIDECAR, GATEWAY], ids=["sidecar", "gateway"])
def test_node_metadata_round_trips_through_the_bootstrap_proto(proxy: Proxy) -> None:
    node = parse(bootstrap(opts(proxy))).node

    meta = json_format.MessageToDict(node.metadata)

    assert node.id == proxy.id
    assert node.cluster == f"{proxy.workload}.{proxy.namespace}"  # Istio's service cluster
    assert from_node_metadata(node.id, meta) == proxy


def test_admin_listens_on_loopback_and_logs_nowhere() -> None:
    admin = parse(bootstrap(opts())).admin

    assert admin.address.socket_address.address == "127.0.0.1"
    assert admin.address.socket_address.port_value == 15000
    assert [log.name for log in admin.access_log] == ["envoy.access_loggers.file"]
    assert "/dev/null" in json.dumps(bootstrap(opts())["admin"])


def test_ads_carries_clusters_and_listeners_over_delta_grpc_v3() -> None:
    dyn = parse(bootstrap(opts())).dynamic_resources

    ads = dyn.ads_config
    assert ads.api_type == ads.DELTA_GRPC
    assert ads.transport_api_version == 2  # V3
    assert ads.set_node_on_first_message_only
    assert [g.envoy_grpc.cluster_name for g in ads.grpc_services] == [XDS_CLUSTER]
    for source in (dyn.cds_config, dyn.lds_config):
        assert source.HasField("ads")
        assert source.resource_api_version == 2  # V3
        assert source.initial_fetch_timeout.ToSeconds() == 0  # wait for the control plane


def test_xds_and_sds_streams_back_off_at_most_five_seconds() -> None:
    """Envoy's default back-off grows to 30 s; plait's stops at 5 s, so a proxy is back on
    current config within seconds of a control-plane outage (`XDS_RETRY_MAX_S`)."""
    boot = parse(bootstrap(opts(sds_socket=SDS_SOCKET, xds_identity=CONTROL_PLANE)))
    (xds,) = [c for c in boot.static_resources.clusters if c.name == XDS_CLUSTER]
    tls = tls_pb2.UpstreamTlsContext()
    assert xds.transport_socket.typed_config.Unpack(tls)
    sds = tls.common_tls_context.tls_certificate_sds_secret_configs[0].sds_config
    for source in (boot.dynamic_resources.ads_config, sds.api_config_source):
        (service,) = source.grpc_services
        back_off = service.envoy_grpc.retry_policy.retry_back_off
        assert back_off.base_interval.ToMilliseconds() == 500
        assert back_off.max_interval.ToMilliseconds() == 5000


def test_state_of_the_world_ads_is_an_option() -> None:
    dyn = parse(bootstrap(opts(xds_protocol=XdsProtocol.SOTW))).dynamic_resources

    assert dyn.ads_config.api_type == dyn.ads_config.GRPC


def test_initial_fetch_timeout_is_an_option() -> None:
    dyn = parse(bootstrap(opts(initial_fetch_timeout_s=2.5))).dynamic_resources

    assert dyn.cds_config.initial_fetch_timeout.ToMilliseconds() == 2500


def test_xds_cluster_is_http2_with_keepalive_to_the_control_plane() -> None:
    (cluster,) = parse(bootstrap(opts())).static_resources.clusters

    assert cluster.name == XDS_CLUSTER
    assert cluster.type == cluster.STATIC
    assert cluster.connect_timeout.ToSeconds() == 1
    addr = cluster.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address
    assert (addr.address, addr.port_value) == ("127.0.0.1", 15010)
    assert cluster.upstream_connection_options.tcp_keepalive.keepalive_time.value > 0
    http = bootstrap(opts())["static_resources"]["clusters"][0]
    options = http["typed_extension_protocol_options"][
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
    ]
    assert "http2_protocol_options" in options["explicit_http_config"]


def test_a_control_plane_host_name_is_resolved_by_dns() -> None:
    (cluster,) = parse(bootstrap(opts(host="istiod.istio-system.svc"))).static_resources.clusters

    assert cluster.type == cluster.STRICT_DNS


def test_connection_limit_is_set_so_envoy_does_not_warn() -> None:
    monitors = parse(bootstrap(opts())).overload_manager.resource_monitors

    assert [m.name for m in monitors] == [
        "envoy.resource_monitors.global_downstream_max_connections"
    ]


def test_bootstrap_is_pure_and_json_ready() -> None:
    assert json.dumps(bootstrap(opts())) == json.dumps(bootstrap(opts()))


@pytest.mark.parametrize(
    "bad",
    [
        {"admin_port": 70000},
        {"xds_port": 0},
        {"concurrency": 0},
        {"initial_fetch_timeout_s": -1},
        {"sds_socket": "relative/sds.sock"},
        {"xds_identity": control_plane_identity("cluster.local")},  # mTLS needs SDS
        {"prometheus_port": 15090},  # the metrics listener needs a fixed admin port
        {"admin_port": 15000, "prometheus_port": 0},
    ],
)
def test_options_reject_nonsense(bad: dict[str, Any]) -> None:
    base: dict[str, Any] = {"proxy": SIDECAR, "admin_port": 0, "xds_host": "h", "xds_port": 1}
    with pytest.raises(ValueError):
        BootstrapOptions(**(base | bad))


def test_without_identity_options_there_is_no_sds_and_no_tls() -> None:
    doc = bootstrap(opts())

    assert [c["name"] for c in doc["static_resources"]["clusters"]] == [XDS_CLUSTER]
    assert "transport_socket" not in json.dumps(doc)
    assert SDS_CLUSTER not in json.dumps(doc)


def test_sds_cluster_is_http2_over_the_agents_unix_socket() -> None:
    doc = bootstrap(opts(sds_socket=SDS_SOCKET))
    xds, sds = parse(doc).static_resources.clusters

    assert sds.name == SDS_CLUSTER
    assert sds.type == sds.STATIC
    endpoint = sds.load_assignment.endpoints[0].lb_endpoints[0].endpoint
    assert endpoint.address.pipe.path == SDS_SOCKET
    options = doc["static_resources"]["clusters"][1]["typed_extension_protocol_options"]
    assert "http2_protocol_options" in json.dumps(options)
    assert not xds.HasField("transport_socket")  # SDS alone leaves xDS in plaintext


def test_xds_over_mtls_presents_the_sds_cert_and_checks_the_control_planes_san() -> None:
    (xds, _) = parse(
        bootstrap(opts(sds_socket=SDS_SOCKET, xds_identity=CONTROL_PLANE))
    ).static_resources.clusters

    assert xds.transport_socket.name == "envoy.transport_sockets.tls"
    tls = tls_pb2.UpstreamTlsContext()
    assert xds.transport_socket.typed_config.Unpack(tls)
    assert tls.sni == "plaitd.istio-system.svc"
    common = tls.common_tls_context
    assert list(common.alpn_protocols) == ["h2"]
    (cert,) = common.tls_certificate_sds_secret_configs
    roots = common.combined_validation_context.validation_context_sds_secret_config
    assert (cert.name, roots.name) == ("default", "ROOTCA")
    for secret in (cert, roots):
        source = secret.sds_config.api_config_source
        assert [g.envoy_grpc.cluster_name for g in source.grpc_services] == [SDS_CLUSTER]
        assert source.transport_api_version == 2  # V3
        assert secret.sds_config.resource_api_version == 2  # V3
    (san,) = (
        common.combined_validation_context.default_validation_context.match_typed_subject_alt_names
    )
    assert san.san_type == san.URI
    assert san.matcher.exact == "spiffe://cluster.local/ns/istio-system/sa/plaitd"


def test_prometheus_port_serves_only_the_admin_apis_prometheus_stats() -> None:
    doc = bootstrap(opts(prometheus_port=15090))
    static = parse(doc).static_resources
    (listener,) = static.listeners
    assert listener.address.socket_address.address == "0.0.0.0"
    assert listener.address.socket_address.port_value == 15090
    (stats,) = [c for c in static.clusters if c.name == PROMETHEUS_CLUSTER]
    endpoint = stats.load_assignment.endpoints[0].lb_endpoints[0].endpoint
    assert (
        endpoint.address.socket_address.address,
        endpoint.address.socket_address.port_value,
    ) == (
        "127.0.0.1",
        15000,
    )  # the admin API, which stays on loopback
    hcm = doc["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
    (vhost,) = hcm["typed_config"]["route_config"]["virtual_hosts"]
    assert vhost["routes"] == [
        {"match": {"prefix": "/stats/prometheus"}, "route": {"cluster": PROMETHEUS_CLUSTER}}
    ]
    assert "listeners" not in bootstrap(opts())["static_resources"]


@pytest.mark.parametrize(
    ("proxy", "host", "identity"),
    [
        (SIDECAR, "127.0.0.1", False),
        (GATEWAY, "127.0.0.1", False),
        (SIDECAR, "localhost", False),
        (SIDECAR, "127.0.0.1", True),
        (GATEWAY, "localhost", True),
        (SIDECAR, "127.0.0.1", None),
    ],
    ids=["sidecar", "gateway", "dns", "sidecar-mtls", "gateway-mtls-dns", "pod-metrics"],
)
def test_envoy_validates_the_bootstrap(
    tmp_path: Path, proxy: Proxy, host: str, identity: bool | None
) -> None:
    """`identity` None: a pod's proxy (mTLS and the Prometheus listener)."""
    extra: dict[str, Any] = (
        {"sds_socket": SDS_SOCKET, "xds_identity": CONTROL_PLANE} if identity is not False else {}
    )
    if identity is None:
        extra["prometheus_port"] = 15090
    path = tmp_path / "bootstrap.json"
    path.write_text(json.dumps(bootstrap(opts(proxy, host, **extra))))

    result = subprocess.run(
        [str(find_envoy()), "--mode", "validate", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "warning" not in result.stderr.lower(), result.stderr
