"""Peer workload: the calling sidecar names its workload in a request header.

On an inbound request the caller's SPIFFE ID names only a namespace and a service
account, which several workloads may share; Istio's metadata exchange tells the server
side who called. plait's equivalent: every sidecar's outbound HTTP connection manager
sets `x-plait-source-workload: NAMESPACE/WORKLOAD` on each request with an early header
mutation (`early_header_mutation_extensions`, no extra HTTP filter), overwriting any
value the app sent; the server side logs it (`translate.accesslog`, field
`source_workload`) and `plait.telemetry` trusts it only when it agrees with the caller's
certificate. The value is a constant of the proxy's own (per-proxy) listener, so the
shared outbound route tables stay shared.
"""

from __future__ import annotations

from envoy.config.common.mutation_rules.v3 import mutation_rules_pb2
from envoy.config.core.v3 import base_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.http.early_header_mutation.header_mutation.v3 import (
    header_mutation_pb2,
)

from plait.model.proxy import Proxy

SOURCE_WORKLOAD_HEADER = "x-plait-source-workload"
EARLY_HEADER_MUTATION = "envoy.http.early_header_mutation.header_mutation"


def source_workload(proxy: Proxy) -> str:
    """The header value naming `proxy`'s workload: `NAMESPACE/WORKLOAD`."""
    value = f"{proxy.namespace}/{proxy.workload}"
    if "%" in value:
        raise ValueError(f"workload {value!r} would be read as a command operator")
    return value


def stamp(
    hcm: hcm_pb2.HttpConnectionManager, value: str, header: str = SOURCE_WORKLOAD_HEADER
) -> hcm_pb2.HttpConnectionManager:
    """Make the HCM set `header` to `value` on every request, overwriting what the
    client sent; returns it."""
    option = base_pb2.HeaderValueOption(
        header=base_pb2.HeaderValue(key=header, value=value),
        append_action=base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD,
    )
    mutation = header_mutation_pb2.HeaderMutation(
        mutations=[mutation_rules_pb2.HeaderMutation(append=option)]
    )
    ext = hcm.early_header_mutation_extensions.add(name=EARLY_HEADER_MUTATION)
    ext.typed_config.Pack(mutation)
    return hcm
