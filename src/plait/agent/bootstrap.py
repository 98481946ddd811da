"""The Envoy bootstrap a plait proxy starts from (pure: no I/O, no clock).

The bootstrap holds only what Envoy needs before it can talk to the control plane: who it
is (node id, cluster, metadata that `model.proxy.from_node_metadata` reads back), where its
admin API listens, and how to reach the control plane (one static cluster, `xds-grpc`,
used by ADS). Every listener, cluster, route and endpoint then arrives over ADS.

Choices worth knowing (reference: envoy.config.bootstrap.v3.Bootstrap,
https://www.envoyproxy.io/docs/envoy/latest/api-v3/config/bootstrap/v3/bootstrap.proto):

- `initial_fetch_timeout: 0s` on CDS and LDS, as Istio does: Envoy stays un-initialised
  (admin `/ready` answers 503) until the control plane has answered, instead of going
  LIVE with no configuration after the default 15 s. Readiness then means "configured".
- ADS is delta xDS (`api_type: DELTA_GRPC`, DeltaAggregatedResources) by default: a
  change sends only the resources it touched, and a reconnect resends only what changed
  (`initial_resource_versions`). `xds_protocol=XdsProtocol.SOTW` asks for the State of
  the World (`GRPC`) instead; the control plane serves both on the same port.
- `set_node_on_first_message_only`: the node (with its metadata) travels once per stream.
- The `xds-grpc` cluster speaks HTTP/2 with HTTP/2 PINGs and TCP keepalive so a dead
  control plane (or a silently dropped connection) is noticed and ADS reconnects.
- The downstream connection limit is set through the overload manager's
  `global_downstream_max_connections` resource monitor (the runtime key
  `overload.global_downstream_max_connections` is deprecated); without any limit Envoy
  logs a warning at start-up.
- The static runtime layer raises `re2.max_program_size.error_level` to Istio's value,
  so the regular expressions of an Istio VirtualService that Istio accepts are accepted
  here too (Envoy's default, 100, rejects modest patterns).

Identity (optional; without it the bootstrap is plaintext xDS as before):

- `sds_socket` adds the static cluster `sds-grpc`: HTTP/2 to the agent's SDS server on a
  Unix socket (a `pipe` address). Listeners and clusters from the control plane name it
  to fetch the secrets `default` (certificate and key) and `ROOTCA` (trust bundle).
- `xds_identity` (requires `sds_socket`) puts mTLS on `xds-grpc`: Envoy presents
  `default` and accepts the control plane only if its certificate chains to `ROOTCA`
  and carries exactly that SPIFFE URI SAN (`combined_validation_context`: the SAN match
  here, the roots from SDS). SNI is `SA.NS.svc` of that identity, ALPN `h2`. Envoy
  cannot open the ADS stream until SDS has delivered both secrets, which is why the
  agent starts its SDS server before Envoy.

Metrics (optional): `prometheus_port` adds Istio's static listener `0.0.0.0:PORT` whose
only route, `/stats/prometheus`, goes to the admin API through the static cluster
`prometheus_stats`, so Prometheus scrapes a pod at its IP while the admin API (which can
change Envoy) stays on loopback.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from plait.api.common import is_ip
from plait.model.identity import (
    CERT_SECRET,
    CONTROL_PLANE_HOST,
    ROOT_SECRET,
    SDS_CLUSTER,
    SpiffeId,
)
from plait.model.proxy import Proxy, to_node_metadata
from plait.translate import metrics, tracing

XDS_CLUSTER = "xds-grpc"
"""Name of the static cluster that points at the control plane."""
PROMETHEUS_CLUSTER = "prometheus_stats"
PROMETHEUS_PATH = "/stats/prometheus"

DEFAULT_MAX_DOWNSTREAM_CONNECTIONS = 50_000

_HTTP_PROTOCOL_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
_UPSTREAM_TLS = "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"


class XdsProtocol(StrEnum):
    """The ADS variant Envoy speaks: its `ApiConfigSource.api_type`."""

    DELTA = "DELTA_GRPC"  # incremental: DeltaAggregatedResources
    SOTW = "GRPC"  # State of the World: StreamAggregatedResources


@dataclass(frozen=True)
class BootstrapOptions:
    """What one Envoy needs to start: its proxy, admin port and the control plane address.

    `proxy.id` is the Envoy node id (made with `model.proxy.node_id`); the xDS server
    rebuilds the Proxy from it and the node metadata. `admin_port` 0 lets Envoy pick a
    free port (the supervisor learns it through `--admin-address-path`). `concurrency`
    is Envoy's worker-thread count; it is a command-line flag, applied by the supervisor.
    `sds_socket` is the path of the agent's SDS socket; `xds_identity`, the control
    plane's SPIFFE ID (`control_plane_identity(trust_domain)`), turns on mTLS to xDS.
    `admin_host` is where the admin API listens: loopback, or the pod IP of a proxy in a
    pod network, so that the agent on the host reaches it. `prometheus_port` serves
    `/stats/prometheus` on every address (a proxy in a pod: 15090). `xds_protocol` is
    the ADS variant (delta unless a control plane that only speaks SotW is used).
    """

    proxy: Proxy
    admin_port: int
    xds_host: str
    xds_port: int
    concurrency: int = 1
    initial_fetch_timeout_s: float = 0.0
    max_downstream_connections: int = DEFAULT_MAX_DOWNSTREAM_CONNECTIONS
    sds_socket: str | None = None
    xds_identity: SpiffeId | None = None
    admin_host: str = "127.0.0.1"
    prometheus_port: int | None = None
    xds_protocol: XdsProtocol = XdsProtocol.DELTA

    def __post_init__(self) -> None:
        if not self.proxy.id:
            raise ValueError("proxy.id (the Envoy node id) is empty")
        if not 0 <= self.admin_port <= 65535:
            raise ValueError(f"admin_port {self.admin_port} is not a port number")
        if not 0 < self.xds_port <= 65535:
            raise ValueError(f"xds_port {self.xds_port} is not a port number")
        if self.concurrency < 1:
            raise ValueError(f"concurrency {self.concurrency} must be at least 1")
        if self.initial_fetch_timeout_s < 0:
            raise ValueError("initial_fetch_timeout_s must not be negative")
        if self.sds_socket is not None and not self.sds_socket.startswith("/"):
            raise ValueError(f"sds_socket {self.sds_socket!r} must be an absolute path")
        if self.xds_identity is not None and self.sds_socket is None:
            raise ValueError("xds_identity (mTLS to the control plane) needs sds_socket")
        if self.prometheus_port is not None and (
            self.admin_port == 0 or not 0 < self.prometheus_port <= 65535
        ):
            raise ValueError("prometheus_port needs a port number and a fixed admin_port")


def _duration(seconds: float) -> str:
    """A protobuf Duration in its JSON form ("1.5s")."""
    return f"{seconds:g}s"


def _socket_address(host: str, port: int) -> dict[str, Any]:
    return {"socket_address": {"address": host, "port_value": port}}


def _node(proxy: Proxy) -> dict[str, Any]:
    # cluster: Istio's service cluster `WORKLOAD.NAMESPACE`, the Zipkin tracer's service name
    cluster = f"{proxy.workload}.{proxy.namespace}"
    return {"id": proxy.id, "cluster": cluster, "metadata": to_node_metadata(proxy)}


def _admin(host: str, port: int) -> dict[str, Any]:
    return {
        "address": _socket_address(host, port),
        "access_log": [
            {
                "name": "envoy.access_loggers.file",
                "typed_config": {
                    "@type": "type.googleapis.com/"
                    "envoy.extensions.access_loggers.file.v3.FileAccessLog",
                    "path": "/dev/null",
                },
            }
        ],
    }


XDS_RETRY_BASE_S = 0.5
XDS_RETRY_MAX_S = 5.0
"""How soon Envoy opens an xDS (or SDS) stream again after it failed: jittered
exponential back-off from 0.5 s (Envoy's default) up to 5 s, where Envoy's default
stops at 30 s. Envoy connects to the control plane itself (no local agent in between,
as istio-agent is for Istio), so after a control-plane restart or outage its back-off
alone decides how long a proxy runs on stale config: with 30 s, Envoys that had failed
five or six times waited 8–30 s more after the control plane was back (the scale
bench's real Envoys), while the 1,000-proxy storm must be synced within 10 s. While the
control plane is down, 1,000 proxies retrying at most every 5 s cost it a few hundred
refused connections a second."""


def _grpc_api(cluster: str, protocol: XdsProtocol = XdsProtocol.SOTW) -> dict[str, Any]:
    """An ApiConfigSource that streams over Envoy's own gRPC client to `cluster`, with
    plait's stream back-off (`XDS_RETRY_MAX_S`; `EnvoyGrpc.retry_policy`, which Envoy
    reads for xDS streams only)."""
    back_off = {
        "base_interval": _duration(XDS_RETRY_BASE_S),
        "max_interval": _duration(XDS_RETRY_MAX_S),
    }
    return {
        "api_type": protocol.value,
        "transport_api_version": "V3",
        "set_node_on_first_message_only": True,
        "grpc_services": [
            {"envoy_grpc": {"cluster_name": cluster, "retry_policy": {"retry_back_off": back_off}}}
        ],
    }


def _dynamic_resources(initial_fetch_timeout_s: float, protocol: XdsProtocol) -> dict[str, Any]:
    def ads_source() -> dict[str, Any]:
        return {
            "ads": {},
            "resource_api_version": "V3",
            "initial_fetch_timeout": _duration(initial_fetch_timeout_s),
        }

    return {
        "ads_config": _grpc_api(XDS_CLUSTER, protocol),
        "cds_config": ads_source(),
        "lds_config": ads_source(),
    }


def _http2_options(keepalive: bool) -> dict[str, Any]:
    h2: dict[str, Any] = {}
    if keepalive:
        h2["connection_keepalive"] = {"interval": "30s", "timeout": "10s"}
    return {
        _HTTP_PROTOCOL_OPTIONS: {
            "@type": f"type.googleapis.com/{_HTTP_PROTOCOL_OPTIONS}",
            "explicit_http_config": {"http2_protocol_options": h2},
        }
    }


def sds_config_source() -> dict[str, Any]:
    """The ConfigSource that fetches a secret from the agent over the `sds-grpc` cluster."""
    return {
        "api_config_source": _grpc_api(SDS_CLUSTER),
        "resource_api_version": "V3",
        "initial_fetch_timeout": "0s",
    }


def sds_secret(name: str) -> dict[str, Any]:
    """An SdsSecretConfig for secret `name` (CERT_SECRET or ROOT_SECRET) from the agent."""
    return {"name": name, "sds_config": sds_config_source()}


def _sds_cluster(socket_path: str) -> dict[str, Any]:
    return {
        "name": SDS_CLUSTER,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": SDS_CLUSTER,
            "endpoints": [
                {"lb_endpoints": [{"endpoint": {"address": {"pipe": {"path": socket_path}}}}]}
            ],
        },
        "typed_extension_protocol_options": _http2_options(keepalive=False),
    }


def _xds_tls(server: SpiffeId) -> dict[str, Any]:
    """The UpstreamTlsContext for mTLS to the control plane whose identity is `server`."""
    return {
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": f"type.googleapis.com/{_UPSTREAM_TLS}",
            "sni": CONTROL_PLANE_HOST,
            "common_tls_context": {
                "alpn_protocols": ["h2"],
                "tls_certificate_sds_secret_configs": [sds_secret(CERT_SECRET)],
                "combined_validation_context": {
                    "default_validation_context": {
                        "match_typed_subject_alt_names": [
                            {"san_type": "URI", "matcher": {"exact": server.uri}}
                        ]
                    },
                    "validation_context_sds_secret_config": sds_secret(ROOT_SECRET),
                },
            },
        },
    }


def _xds_cluster(host: str, port: int, server: SpiffeId | None) -> dict[str, Any]:
    cluster: dict[str, Any] = {
        "name": XDS_CLUSTER,
        "type": "STATIC" if is_ip(host) else "STRICT_DNS",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": XDS_CLUSTER,
            "endpoints": [
                {"lb_endpoints": [{"endpoint": {"address": _socket_address(host, port)}}]}
            ],
        },
        "typed_extension_protocol_options": _http2_options(keepalive=True),
        "upstream_connection_options": {
            "tcp_keepalive": {
                "keepalive_time": 300,
                "keepalive_interval": 30,
                "keepalive_probes": 3,
            }
        },
    }
    if not is_ip(host):
        cluster["dns_lookup_family"] = "V4_PREFERRED"
    if server is not None:
        cluster["transport_socket"] = _xds_tls(server)
    return cluster


def _overload_manager(max_connections: int) -> dict[str, Any]:
    return {
        "resource_monitors": [
            {
                "name": "envoy.resource_monitors.global_downstream_max_connections",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.resource_monitors."
                    "downstream_connections.v3.DownstreamConnectionsConfig",
                    "max_active_downstream_connections": max_connections,
                },
            }
        ]
    }


def _prometheus_cluster(admin_host: str, admin_port: int) -> dict[str, Any]:
    return {
        "name": PROMETHEUS_CLUSTER,
        "type": "STATIC",
        "connect_timeout": "0.25s",
        "load_assignment": {
            "cluster_name": PROMETHEUS_CLUSTER,
            "endpoints": [
                {
                    "lb_endpoints": [
                        {"endpoint": {"address": _socket_address(admin_host, admin_port)}}
                    ]
                }
            ],
        },
    }


def _prometheus_listener(port: int) -> dict[str, Any]:
    """Istio's metrics listener: only `/stats/prometheus` of the admin API, on `port`."""
    hcm = "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
    route = {"match": {"prefix": PROMETHEUS_PATH}, "route": {"cluster": PROMETHEUS_CLUSTER}}
    return {
        "name": f"prometheus_{port}",
        "address": _socket_address("0.0.0.0", port),  # noqa: S104 - scraped at the pod IP
        "filter_chains": [
            {
                "filters": [
                    {
                        "name": "envoy.filters.network.http_connection_manager",
                        "typed_config": {
                            "@type": f"type.googleapis.com/{hcm}",
                            "stat_prefix": "stats",
                            "codec_type": "AUTO",
                            "route_config": {
                                "virtual_hosts": [
                                    {"name": "backend", "domains": ["*"], "routes": [route]}
                                ]
                            },
                            "http_filters": [
                                {
                                    "name": "envoy.filters.http.router",
                                    "typed_config": {
                                        "@type": "type.googleapis.com/"
                                        "envoy.extensions.filters.http.router.v3.Router"
                                    },
                                }
                            ],
                        },
                    }
                ]
            }
        ],
    }


def bootstrap(opts: BootstrapOptions) -> dict[str, Any]:
    """The Envoy v3 bootstrap for `opts`, as a JSON-ready dict."""
    clusters = [_xds_cluster(opts.xds_host, opts.xds_port, opts.xds_identity)]
    if opts.sds_socket is not None:
        clusters.append(_sds_cluster(opts.sds_socket))
    static: dict[str, Any] = {"clusters": clusters}
    if opts.prometheus_port is not None:
        clusters.append(_prometheus_cluster(opts.admin_host, opts.admin_port))
        static["listeners"] = [_prometheus_listener(opts.prometheus_port)]
    return {
        "node": _node(opts.proxy),
        "admin": _admin(opts.admin_host, opts.admin_port),
        "dynamic_resources": _dynamic_resources(opts.initial_fetch_timeout_s, opts.xds_protocol),
        "static_resources": static,
        "overload_manager": _overload_manager(opts.max_downstream_connections),
        "layered_runtime": {
            "layers": [
                {
                    "name": "static",
                    "static_layer": {
                        "re2.max_program_size.error_level": 32768,
                        **tracing.ZIPKIN_RUNTIME,  # span batches (translate.tracing)
                    },
                },
                {"name": "admin", "admin_layer": {}},
            ]
        },
        # histograms reach /stats/prometheus at each flush: 1 s keeps the istio_* figures
        # complete within 2 s of a request (translate.metrics); Istio's default is 5 s
        "stats_flush_interval": "1s",
        "stats_config": metrics.stats_config(),
    }
