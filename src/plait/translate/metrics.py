"""Istio's request metrics, counted by Envoy itself: a stats access logger per HCM. Pure.

Every HTTP connection manager gets Envoy's stats access logger (`envoy.access_loggers.stats`,
checked on Envoy 1.40): when a request ends, Envoy adds 1 to `istio_requests_total` and
records the duration and the request and response sizes in three histograms, each series
tagged with Istio's labels (`LABEL_NAMES`). Each tag is an access-log command operator or a
constant, so nothing leaves Envoy per request. Envoy names them `istiocustom.istio_*`
(`STAT_PREFIX`, Istio's own custom stat namespace) and its `/stats/prometheus` writes them
as `envoy_istiocustom_istio_*`; `telemetry.exporter` serves them under Istio's names.

Where each label comes from:

- the reporting proxy's own side: constants of its listener (its workload, namespace,
  pod labels via `workload_labels`); its principal `%DOWNSTREAM_LOCAL_URI_SAN%` inbound,
  `%UPSTREAM_LOCAL_URI_SAN%` outbound (the certificate it presented, empty without mTLS);
- the callee, on a source report (sidecar outbound, gateway): the endpoint's and the
  cluster's metadata under `HOST_NS` (`tag_endpoint`, `tag_cluster`), read with
  `%METADATA(UPSTREAM_HOST:…)%` and `%METADATA(CLUSTER:…)%`; the principal is
  `%UPSTREAM_PEER_URI_SAN%`;
- the caller, on a destination report (sidecar inbound): every sidecar's and gateway's
  outbound HCM stamps `PEER_HEADER` on each request, overwriting what the app sent: its
  claim `NAMESPACE;SERVICE_ACCOUNT;WORKLOAD;APP;VERSION;CANONICAL_SERVICE;REVISION`
  (`peer_claim`, the role of Istio's metadata exchange). The inbound mTLS chain copies
  it into one tag (`source_peer`) next to the caller's certificate URI SAN
  (`%DOWNSTREAM_PEER_URI_SAN%`); the exporter believes the claim per series only when
  its namespace and service account are the certificate's, else the caller is `unknown`
  in the certificate's namespace. The plain-text chain tags the caller `unknown`
  outright (no certificate vouches), so only a holder of a mesh certificate — a sidecar,
  whose claim is a constant of its own config — can put a value in that tag: the
  number of series stays bounded by the number of workloads;
- `destination_service*` inbound: the Service selecting the proxy's workload (the first
  by hostname when several do); outbound: the cluster's metadata;
- `request_protocol`: `grpc` when the request's content type starts with
  `application/grpc` (a composite filter setting `PROTOCOL_NS`), else `http`;
  `grpc_response_status`: `%GRPC_STATUS_NUMBER%` (blanked on HTTP series by the exporter);
- `response_code`, `response_flags`: `%RESPONSE_CODE%`, `%RESPONSE_FLAGS%`;
  `connection_security_policy`: `mutual_tls` / `none` by inbound chain, `unknown` on
  source reports.

Cardinality is bounded: every tag value is a constant, the control plane's metadata, a
certificate the mesh CA issued, a sidecar's constant claim (above), or one of Envoy's
codes and flags; no tag copies a header an app controls. An operator with no value (no
upstream host, no TLS) yields an empty tag, which the exporter writes as Istio's default
(`unknown`, `-`, `0`, `http`).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

from envoy.config.accesslog.v3 import accesslog_pb2
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.access_loggers.stats.v3 import stats_pb2
from envoy.extensions.common.matching.v3 import extension_matcher_pb2
from envoy.extensions.filters.http.composite.v3 import composite_pb2
from envoy.extensions.filters.http.set_metadata.v3 import set_metadata_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.type.matcher.v3 import http_inputs_pb2
from google.protobuf import struct_pb2
from xds.type.matcher.v3 import matcher_pb2

from plait.model.proxy import Proxy
from plait.model.registry import Endpoint, Service
from plait.model.snapshot import MeshSnapshot
from plait.translate import peer

STAT_PREFIX = "istiocustom"
STATS_LOGGER = "envoy.access_loggers.stats"
PROTOCOL_FILTER = "plait.protocol"
PEER_HEADER = "x-plait-peer"  # the caller's claim (`peer_claim`)
PROTOCOL_NS = "plait.request"  # dynamic metadata: `protocol: grpc`
HOST_NS = "plait"  # endpoint and cluster metadata: the callee's labels, the service
HCM_FILTER = "envoy.filters.network.http_connection_manager"
UNKNOWN = "unknown"
CLUSTER_ID = "Kubernetes"  # Istio's default cluster id

REQUESTS = "istio_requests_total"
DURATION = "istio_request_duration_milliseconds"
REQUEST_BYTES = "istio_request_bytes"
RESPONSE_BYTES = "istio_response_bytes"

DURATION_BUCKETS_MS: tuple[float, ...] = (
    0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000,
    30000, 60000, 300000, 600000, 1800000, 3600000,
)  # fmt: skip
"""Istio's buckets for istio_request_duration_milliseconds (also Envoy's default)."""

BYTES_BUCKETS: tuple[float, ...] = tuple(float(10**i) for i in range(9))
"""Istio's buckets for the size histograms: 1, 10, ... 1e8 bytes."""

SIDE_KEYS = (
    "workload",
    "workload_namespace",
    "principal",
    "app",
    "version",
    "canonical_service",
    "canonical_revision",
    "cluster",
)
"""The labels of one side, in Istio's order (`source_` or `destination_` + key)."""

LABEL_NAMES: tuple[str, ...] = (
    "reporter",
    *(f"source_{k}" for k in SIDE_KEYS),
    *(f"destination_{k}" for k in SIDE_KEYS[:5]),
    "destination_service",
    "destination_service_name",
    "destination_service_namespace",
    *(f"destination_{k}" for k in SIDE_KEYS[5:]),
    "request_protocol",
    "response_code",
    "grpc_response_status",
    "response_flags",
    "connection_security_policy",
)
"""Every label of the istio_request* families, in exposition order."""

Tags = Sequence[tuple[str, str]]  # (label, value format)

CLAIM_SEPARATOR = ";"  # in no Kubernetes name or label value
CLAIM_KEYS = (
    "workload_namespace",
    "service_account",
    "workload",
    "app",
    "version",
    "canonical_service",
    "canonical_revision",
)
"""The fields of a PEER_HEADER claim, in order."""


def workload_labels(name: str, namespace: str, labels: Mapping[str, str]) -> dict[str, str]:
    """One workload's side labels but the principal (Istio's rules for app, version and
    the canonical service and revision)."""
    app = labels.get("app") or labels.get("app.kubernetes.io/name") or UNKNOWN
    version = labels.get("version") or labels.get("app.kubernetes.io/version") or UNKNOWN
    canonical = labels.get("service.istio.io/canonical-name") or (app if app != UNKNOWN else name)
    revision = labels.get("service.istio.io/canonical-revision") or (
        version if version != UNKNOWN else "latest"
    )
    return {
        "workload": name,
        "workload_namespace": namespace,
        "app": app,
        "version": version,
        "canonical_service": canonical,
        "canonical_revision": revision,
        "cluster": CLUSTER_ID if name != UNKNOWN else UNKNOWN,
    }


# -- where the callee's labels come from: endpoint and cluster metadata -------------------


def tag_endpoint(lb: endpoint_components_pb2.LbEndpoint, e: Endpoint) -> None:
    """Put the workload serving `e` in its metadata (a mesh workload's endpoint only)."""
    if e.workload:
        lb.metadata.filter_metadata[HOST_NS].update(
            workload_labels(e.workload, e.namespace, e.labels.as_dict())
        )


def tag_cluster(cluster: cluster_pb2.Cluster, service: Service) -> None:
    """Put the service a cluster reaches in its metadata."""
    cluster.metadata.filter_metadata[HOST_NS].update(
        {"service": service.hostname, "name": service.name, "namespace": service.namespace}
    )


# -- the tags of one report ---------------------------------------------------------------


def _own(proxy: Proxy) -> dict[str, str]:
    return workload_labels(proxy.workload, proxy.namespace, proxy.labels.as_dict())


def _meta(kind: str, namespace: str, key: str) -> str:
    return f"%METADATA({kind}:{namespace}:{key})%"


def _common() -> dict[str, str]:
    return {
        "request_protocol": f"%DYNAMIC_METADATA({PROTOCOL_NS}:protocol)%",
        "response_code": "%RESPONSE_CODE%",
        "grpc_response_status": "%GRPC_STATUS_NUMBER%",
        "response_flags": "%RESPONSE_FLAGS%",
    }


def _literal(value: str) -> str:
    if "%" in value:
        raise ValueError(f"label value {value!r} would be read as a command operator")
    return value


def source_tags(proxy: Proxy) -> Tags:
    """A sidecar's outbound report (and the gateway's): reporter `source`."""
    own = {f"source_{k}": _literal(v) for k, v in _own(proxy).items()}
    callee = {f"destination_{k}": _meta("UPSTREAM_HOST", HOST_NS, k) for k in SIDE_KEYS}
    tags = {
        "reporter": "source",
        **own,
        "source_principal": "%UPSTREAM_LOCAL_URI_SAN%",
        **callee,
        "destination_principal": "%UPSTREAM_PEER_URI_SAN%",
        "destination_service": _meta("CLUSTER", HOST_NS, "service"),
        "destination_service_name": _meta("CLUSTER", HOST_NS, "name"),
        "destination_service_namespace": _meta("CLUSTER", HOST_NS, "namespace"),
        **_common(),
        "connection_security_policy": UNKNOWN,
    }
    return [(name, tags[name]) for name in LABEL_NAMES]


def destination_tags(proxy: Proxy, service: Service | None, mtls: bool) -> Tags:
    """A sidecar's inbound report on its mTLS or plain-text chain: reporter `destination`.
    The caller's side is two tags, `source_peer` and `source_principal`, that the
    exporter turns into Istio's eight (`telemetry.exporter`)."""
    own = {f"destination_{k}": _literal(v) for k, v in _own(proxy).items()}
    if service is not None:
        svc = {
            "destination_service": service.hostname,
            "destination_service_name": service.name,
            "destination_service_namespace": service.namespace,
        }
    else:
        svc = dict.fromkeys(
            ("destination_service", "destination_service_name", "destination_service_namespace"),
            UNKNOWN,
        )
    tags = {
        "reporter": "destination",
        "source_peer": f"%REQ({PEER_HEADER})%" if mtls else UNKNOWN,
        "source_principal": "%DOWNSTREAM_PEER_URI_SAN%" if mtls else UNKNOWN,
        **own,
        "destination_principal": "%DOWNSTREAM_LOCAL_URI_SAN%",
        **{k: _literal(v) for k, v in svc.items()},
        **_common(),
        "connection_security_policy": "mutual_tls" if mtls else "none",
    }
    names = ["reporter", "source_peer", "source_principal"]
    names += [n for n in LABEL_NAMES if not n.startswith("source_") and n != "reporter"]
    return [(name, tags[name]) for name in names]


def peer_claim(proxy: Proxy) -> str:
    """What `proxy` says about itself in PEER_HEADER (see the module docstring)."""
    own = _own(proxy)
    parts = [proxy.namespace, proxy.service_account, *(own[k] for k in CLAIM_KEYS[2:])]
    for part in parts:
        _literal(part)
        if CLAIM_SEPARATOR in part:
            raise ValueError(f"label value {part!r} contains {CLAIM_SEPARATOR!r}")
    return CLAIM_SEPARATOR.join(parts)


def serving_service(snapshot: MeshSnapshot, proxy: Proxy) -> Service | None:
    """The Service a sidecar's inbound requests are reported for: the one selecting its
    workload, the first by hostname when several do; None when none does."""
    selecting = sorted(
        (
            s
            for s in snapshot.services.values()
            if s.namespace == proxy.namespace and s.selector and proxy.labels.matches(s.selector)
        ),
        key=lambda s: s.hostname,
    )
    return selecting[0] if selecting else None


def stats_logger(tags: Tags, skip: Collection[str] = ()) -> accesslog_pb2.AccessLog | None:
    """The stats access logger counting one request in Istio's four families, but those
    named in `skip` (disabled by a Telemetry); None when every family is skipped."""

    def stat(name: str) -> stats_pb2.Config.Stat:
        return stats_pb2.Config.Stat(
            name=name, tags=[stats_pb2.Config.Tag(name=n, value_format=v) for n, v in tags]
        )

    unit = stats_pb2.Config.Histogram
    histograms = [
        unit(stat=stat(DURATION), unit=unit.Milliseconds, value_format="%DURATION%"),
        unit(stat=stat(REQUEST_BYTES), unit=unit.Bytes, value_format="%BYTES_RECEIVED%"),
        unit(stat=stat(RESPONSE_BYTES), unit=unit.Bytes, value_format="%BYTES_SENT%"),
    ]
    counters = [stats_pb2.Config.Counter(stat=stat(REQUESTS), value_fixed={"value": 1})]
    config = stats_pb2.Config(
        stat_prefix=STAT_PREFIX,
        counters=[c for c in counters if c.stat.name not in skip],
        histograms=[h for h in histograms if h.stat.name not in skip],
    )
    if not config.counters and not config.histograms:
        return None
    log = accesslog_pb2.AccessLog(name=STATS_LOGGER)
    log.typed_config.Pack(config)
    return log


def stats_config() -> dict[str, Any]:
    """The bootstrap's `stats_config`: Istio's buckets for the size histograms (Envoy's
    default buckets are already Istio's duration buckets; set anyway, explicitly)."""
    return {
        "histogram_bucket_settings": [
            {
                "match": {"prefix": f"{STAT_PREFIX}.{DURATION}"},
                "buckets": list(DURATION_BUCKETS_MS),
            },
            {"match": {"prefix": f"{STAT_PREFIX}.{REQUEST_BYTES}"}, "buckets": list(BYTES_BUCKETS)},
            {
                "match": {"prefix": f"{STAT_PREFIX}.{RESPONSE_BYTES}"},
                "buckets": list(BYTES_BUCKETS),
            },
        ]
    }


# -- the caller's labels: a composite filter and its matcher -------------------------------


def _set_metadata(namespace: str, values: Mapping[str, str]) -> matcher_pb2.Matcher.OnMatch:
    metadata = set_metadata_pb2.Config()
    value = struct_pb2.Struct()
    value.update(dict(values))
    metadata.metadata.add(metadata_namespace=namespace, value=value)
    action = composite_pb2.ExecuteFilterAction()
    action.typed_config.name = "envoy.filters.http.set_metadata"
    action.typed_config.typed_config.Pack(metadata)
    on_match = matcher_pb2.Matcher.OnMatch()
    on_match.action.name = "set-metadata"
    on_match.action.typed_config.Pack(action)
    return on_match


def _composite(name: str, matcher: matcher_pb2.Matcher) -> hcm_pb2.HttpFilter:
    config = extension_matcher_pb2.ExtensionWithMatcher(xds_matcher=matcher)
    config.extension_config.name = "envoy.filters.http.composite"
    config.extension_config.typed_config.Pack(composite_pb2.Composite())
    f = hcm_pb2.HttpFilter(name=name)
    f.typed_config.Pack(config)
    return f


def protocol_filter() -> hcm_pb2.HttpFilter:
    """Sets `PROTOCOL_NS` `protocol: grpc` for a gRPC content type; nothing otherwise."""
    matcher = matcher_pb2.Matcher()
    tree = matcher.matcher_tree
    tree.input.name = "content-type"
    tree.input.typed_config.Pack(
        http_inputs_pb2.HttpRequestHeaderMatchInput(header_name="content-type")
    )
    tree.prefix_match_map.map["application/grpc"].CopyFrom(
        _set_metadata(PROTOCOL_NS, {"protocol": "grpc"})
    )
    return _composite(PROTOCOL_FILTER, matcher)


# -- putting it on a listener --------------------------------------------------------------


def _hcms(listener: listener_pb2.Listener) -> Iterable[tuple[listener_pb2.FilterChain, Any]]:
    for chain in listener.filter_chains:
        for network_filter in chain.filters:
            if network_filter.name == HCM_FILTER:
                yield chain, network_filter


def _instrument(
    network_filter: Any, tags: Tags, claim: str | None, skip: Collection[str] = ()
) -> None:
    hcm = hcm_pb2.HttpConnectionManager()
    network_filter.typed_config.Unpack(hcm)
    hcm.http_filters.insert(0, protocol_filter())
    logger = stats_logger(tags, skip)
    if logger is not None:
        hcm.access_log.append(logger)
    if claim is not None:
        peer.stamp(hcm, claim, PEER_HEADER)
    network_filter.typed_config.Pack(hcm)


def count_outbound(
    listener: listener_pb2.Listener, proxy: Proxy, skip: Collection[str] = ()
) -> listener_pb2.Listener:
    """Count the requests of every HCM of a sidecar's outbound listener or a gateway's
    listener as source reports (but the families in `skip`), and stamp the proxy's claim
    on them; returns it."""
    claim, tags = peer_claim(proxy), source_tags(proxy)
    for _chain, network_filter in _hcms(listener):
        _instrument(network_filter, tags, claim, skip)
    return listener


def count_inbound(
    listener: listener_pb2.Listener,
    proxy: Proxy,
    service: Service | None,
    mtls_chain: str,
    skip: Collection[str] = (),
) -> listener_pb2.Listener:
    """Count the requests of a sidecar's inbound listener as destination reports (but the
    families in `skip`); the chain named `mtls_chain` serves mTLS callers. Returns it."""
    for chain, network_filter in _hcms(listener):
        tags = destination_tags(proxy, service, mtls=chain.name == mtls_chain)
        _instrument(network_filter, tags, None, skip)
    return listener
