"""Hand-written static Envoy configs: the upstream, and the two-hop "floor".

The floor is what a person would write to forward HTTP through two Envoys with nothing
else: one HTTP connection manager with the router filter, a static route, a STATIC
cluster, Envoy's defaults everywhere else (no retry policy, no circuit-breaker overrides,
no added headers, no xDS). plait's generated sidecar config is compared against it.

The mTLS floor is the same pair with static TLS between them, from certificates of the
mesh's own CA (see `meshid.static_cert`): the server requires a client certificate
chaining to the mesh roots, the client presents its own and checks the server's SPIFFE
ID, as plait's sidecars do. One setting departs from Envoy's defaults on purpose: the
client allows TLS 1.3 (Envoy's client default stops at 1.2; plait's sidecars allow 1.3),
so that both pairs negotiate the same TLS and the comparison measures the configuration,
not the protocol version.

The instrumented floor (`Instrument`) is the same pair observed as plait observes its
traffic: the same JSON access log, the same stats access logger counting Istio's metrics
(with the same tags, histogram buckets and stats flush interval), the same HTTP filter
that tells gRPC apart, the same caller claim stamped on requests, and the same Zipkin
tracer, sampling and span batching, sending to the same collector; and the callee's labels
and service that the client's stats logger reads from its cluster's and endpoint's metadata
(as plait's EDS carries them: without them those tags would be empty and cheaper to record,
and the metrics would not be the same). Those pieces are taken
from plait's own translation (`observed.instrument`), so "the same" holds by
construction; everything else stays hand-written.

The upstream answers every request itself (`direct_response`), so that it is cheaper
than any proxy in front of it and never the bottleneck.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bench.meshid import CertFiles

HCM_TYPE = (
    "type.googleapis.com/"
    "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
)
ROUTER_TYPE = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
TLS_SOCKET = "envoy.transport_sockets.tls"
_TLS = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3."
UPSTREAM_BODY = "ok\n"


@dataclass(frozen=True)
class Instrument:
    """What an Envoy adds to observe its traffic, as Envoy's JSON config."""

    access_logs: list[dict[str, Any]] = field(default_factory=list)  # on the HCM
    filters: list[dict[str, Any]] = field(default_factory=list)  # before the router
    header_mutations: list[dict[str, Any]] = field(default_factory=list)  # early, on the HCM
    tracing: dict[str, Any] | None = None  # the HCM's tracing
    clusters: list[dict[str, Any]] = field(default_factory=list)  # e.g. the trace collector
    bootstrap: dict[str, Any] = field(default_factory=dict)  # stats_config, runtime, …
    target_metadata: dict[str, Any] = field(default_factory=dict)  # on the forwarder's cluster
    endpoint_metadata: dict[str, Any] = field(default_factory=dict)  # on its endpoint


BARE = Instrument()


def _address(host: str, port: int) -> dict[str, Any]:
    return {"socket_address": {"address": host, "port_value": port}}


def _certificate(cert: CertFiles) -> dict[str, Any]:
    return {
        "certificate_chain": {"filename": str(cert.chain)},
        "private_key": {"filename": str(cert.key)},
    }


def downstream_tls(cert: CertFiles) -> dict[str, Any]:
    """Server side: present `cert`, require a client certificate from the same roots."""
    return {
        "name": TLS_SOCKET,
        "typed_config": {
            "@type": _TLS + "DownstreamTlsContext",
            "common_tls_context": {
                "tls_certificates": [_certificate(cert)],
                "validation_context": {"trusted_ca": {"filename": str(cert.roots)}},
            },
            "require_client_certificate": True,
        },
    }


def upstream_tls(cert: CertFiles, server: str, sni: str) -> dict[str, Any]:
    """Client side: present `cert`, verify the server against the roots and its SPIFFE ID."""
    return {
        "name": TLS_SOCKET,
        "typed_config": {
            "@type": _TLS + "UpstreamTlsContext",
            "sni": sni,
            "common_tls_context": {
                "tls_params": {"tls_maximum_protocol_version": "TLSv1_3"},
                "tls_certificates": [_certificate(cert)],
                "validation_context": {
                    "trusted_ca": {"filename": str(cert.roots)},
                    "match_typed_subject_alt_names": [
                        {"san_type": "URI", "matcher": {"exact": server}}
                    ],
                },
            },
        },
    }


def _listener(
    name: str,
    port: int,
    routes: dict[str, Any],
    absolute_url: bool,
    tls: dict[str, Any] | None = None,
    instrument: Instrument = BARE,
) -> dict[str, Any]:
    hcm: dict[str, Any] = {
        "@type": HCM_TYPE,
        "stat_prefix": name,
        "codec_type": "AUTO",
        "route_config": routes,
        "http_filters": [
            *instrument.filters,
            {"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER_TYPE}},
        ],
    }
    if instrument.access_logs:
        hcm["access_log"] = instrument.access_logs
    if instrument.header_mutations:
        hcm["early_header_mutation_extensions"] = instrument.header_mutations
    if instrument.tracing is not None:
        hcm["tracing"] = instrument.tracing
    if absolute_url:
        hcm["http_protocol_options"] = {"allow_absolute_url": True}
    chain: dict[str, Any] = {
        "filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}]
    }
    if tls is not None:
        chain["transport_socket"] = tls
    return {"name": name, "address": _address("127.0.0.1", port), "filter_chains": [chain]}


def _cluster(
    name: str, port: int, tls: dict[str, Any] | None = None, instrument: Instrument = BARE
) -> dict[str, Any]:
    endpoint: dict[str, Any] = {"endpoint": {"address": _address("127.0.0.1", port)}}
    if instrument.endpoint_metadata:
        endpoint["metadata"] = {"filter_metadata": instrument.endpoint_metadata}
    cluster: dict[str, Any] = {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [endpoint]}],
        },
    }
    if instrument.target_metadata:
        cluster["metadata"] = {"filter_metadata": instrument.target_metadata}
    if tls is not None:
        cluster["transport_socket"] = tls
    return cluster


def _config(
    listeners: list[dict[str, Any]], clusters: list[dict[str, Any]], instrument: Instrument = BARE
) -> dict[str, Any]:
    return {
        "admin": {"address": _address("127.0.0.1", 0)},
        "static_resources": {
            "listeners": listeners,
            "clusters": [*clusters, *instrument.clusters],
        },
        **instrument.bootstrap,
    }


def upstream(port: int) -> dict[str, Any]:
    """An Envoy that answers `200 ok` to every request on `port`."""
    routes = {
        "name": "upstream",
        "virtual_hosts": [
            {
                "name": "all",
                "domains": ["*"],
                "routes": [
                    {
                        "match": {"prefix": "/"},
                        "direct_response": {
                            "status": 200,
                            "body": {"inline_string": UPSTREAM_BODY},
                        },
                    }
                ],
            }
        ],
    }
    return _config([_listener("upstream", port, routes, absolute_url=False)], [])


def forwarder(
    port: int,
    domain: str,
    to_port: int,
    *,
    absolute_url: bool,
    listener_tls: dict[str, Any] | None = None,
    cluster_tls: dict[str, Any] | None = None,
    instrument: Instrument = BARE,
) -> dict[str, Any]:
    """An Envoy listening on `port` that sends requests for `domain` to 127.0.0.1:`to_port`;
    `listener_tls` / `cluster_tls` (transport sockets) put TLS on either side; `instrument`
    observes the traffic (`Instrument`)."""
    routes = {
        "name": "forward",
        "virtual_hosts": [
            {
                "name": "target",
                "domains": [domain],
                "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "target"}}],
            }
        ],
    }
    listener = _listener(
        "forward", port, routes, absolute_url=absolute_url, tls=listener_tls, instrument=instrument
    )
    return _config([listener], [_cluster("target", to_port, cluster_tls, instrument)], instrument)
