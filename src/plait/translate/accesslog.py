"""Access logs: every HTTP connection manager writes one JSON object per request.

Envoy's file access logger (`envoy.access_loggers.file`, `log_format.json_format`) appends
to the proxy's own file, `Proxy.access_log` (node metadata: `plait up` puts it next to the
app's log); a proxy without one gets no access log. The file logger formats the line on
the worker thread into a buffer that Envoy's flush thread writes out (every
`--file-flush-interval-msec`, 1 s for plait as for Istio), so a request costs no syscall.

Field names are those of Istio's default JSON access log (`EnvoyJSONLogFormatIstio`,
istio/istio pilot/pkg/model/telemetry_logging.go), plus the identities of both ends
(`downstream_peer_uri_san` is the caller's SPIFFE ID on an inbound mTLS chain,
`downstream_local_uri_san` the proxy's own, `upstream_peer_uri_san` the callee's on an
outbound mTLS connection), the caller's workload as its sidecar named it
(`source_workload`, see `translate.peer`), the trace context, and two constants: `direction` (inbound,
outbound, gateway) and `proxy` (its node id). A single-operator value such as
`%RESPONSE_CODE%` is written as a JSON number; an empty one as null.

Trace id: `%TRACE_ID%` is the active span's id and is null while no tracer is configured
(checked on Envoy 1.40), so each line also carries the propagation headers as they
passed through Envoy (`traceparent`, `x_b3_traceid`); readers take the first one present
(`local.accesslogs.trace_id_of`).
"""

from __future__ import annotations

from enum import StrEnum

from envoy.config.accesslog.v3 import accesslog_pb2
from envoy.config.core.v3 import substitution_format_string_pb2 as sfs_pb2
from envoy.extensions.access_loggers.file.v3 import file_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from google.protobuf import struct_pb2

from plait.model.proxy import Proxy

FILE_LOGGER = "envoy.access_loggers.file"


class Direction(StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"
    GATEWAY = "gateway"


FIELDS: dict[str, str] = {
    # Istio's default JSON format
    "start_time": "%START_TIME%",
    "method": "%REQ(:METHOD)%",
    "path": "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%",
    "protocol": "%PROTOCOL%",
    "response_code": "%RESPONSE_CODE%",
    "response_flags": "%RESPONSE_FLAGS%",
    "response_code_details": "%RESPONSE_CODE_DETAILS%",
    "connection_termination_details": "%CONNECTION_TERMINATION_DETAILS%",
    "upstream_transport_failure_reason": "%UPSTREAM_TRANSPORT_FAILURE_REASON%",
    "bytes_received": "%BYTES_RECEIVED%",
    "bytes_sent": "%BYTES_SENT%",
    "duration": "%DURATION%",
    "upstream_service_time": "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%",
    "x_forwarded_for": "%REQ(X-FORWARDED-FOR)%",
    "user_agent": "%REQ(USER-AGENT)%",
    "request_id": "%REQ(X-REQUEST-ID)%",
    "authority": "%REQ(:AUTHORITY)%",
    "content_type": "%REQ(CONTENT-TYPE)%",  # tells gRPC apart (Istio's request_protocol)
    "upstream_host": "%UPSTREAM_HOST%",
    "upstream_cluster": "%UPSTREAM_CLUSTER_RAW%",
    "upstream_local_address": "%UPSTREAM_LOCAL_ADDRESS%",
    "downstream_local_address": "%DOWNSTREAM_LOCAL_ADDRESS%",
    "downstream_remote_address": "%DOWNSTREAM_REMOTE_ADDRESS%",
    "requested_server_name": "%REQUESTED_SERVER_NAME%",
    "route_name": "%ROUTE_NAME%",
    # identities (SPIFFE IDs from the mTLS certificates)
    "downstream_peer_uri_san": "%DOWNSTREAM_PEER_URI_SAN%",
    "downstream_local_uri_san": "%DOWNSTREAM_LOCAL_URI_SAN%",
    "upstream_peer_uri_san": "%UPSTREAM_PEER_URI_SAN%",
    "source_workload": "%REQ(X-PLAIT-SOURCE-WORKLOAD)%",  # NAMESPACE/WORKLOAD (translate.peer)
    # trace context
    "trace_id": "%TRACE_ID%",
    "traceparent": "%REQ(TRACEPARENT)%",
    "x_b3_traceid": "%REQ(X-B3-TRACEID)%",
}
"""Field name → Envoy command operator, in the order a reader expects them."""


def json_format(direction: Direction, proxy: str) -> struct_pb2.Struct:
    """The `json_format` of one HCM's log: FIELDS plus the constants `direction`, `proxy`."""
    if "%" in proxy:
        raise ValueError(f"proxy name {proxy!r} would be read as a command operator")
    fmt = struct_pb2.Struct()
    fmt.update(FIELDS)
    fmt.update({"direction": direction.value, "proxy": proxy})
    return fmt


def access_log(path: str, direction: Direction, proxy: str) -> accesslog_pb2.AccessLog:
    """A file access log writing one JSON object per request to `path`."""
    log_format = sfs_pb2.SubstitutionFormatString(json_format=json_format(direction, proxy))
    log = accesslog_pb2.AccessLog(name=FILE_LOGGER)
    log.typed_config.Pack(file_pb2.FileAccessLog(path=path, log_format=log_format))
    return log


def for_proxy(proxy: Proxy, direction: Direction) -> accesslog_pb2.AccessLog | None:
    """The proxy's access log for HCMs facing `direction`; None if it has no log file."""
    if not proxy.access_log:
        return None
    return access_log(proxy.access_log, direction, proxy.id)


def attach(
    hcm: hcm_pb2.HttpConnectionManager, log: accesslog_pb2.AccessLog | None
) -> hcm_pb2.HttpConnectionManager:
    """Add `log` (if any) to the HCM's access logs; returns the HCM."""
    if log is not None:
        hcm.access_log.append(log)
    return hcm
