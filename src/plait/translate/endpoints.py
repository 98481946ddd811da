"""ClusterLoadAssignments for EDS clusters, filtered by subset labels.

An endpoint that speaks mesh mTLS carries `tlsMode: istio` in its metadata (under
`envoy.transport_socket_match`), which picks the cluster's mTLS transport socket
(`mtls.auto_socket_matches`); which endpoints do is `mtls.endpoint_mtls`'s decision.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from envoy.config.core.v3 import address_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
from google.protobuf import wrappers_pb2

from plait.model.registry import Endpoint
from plait.translate import metrics, mtls

UNIX_PREFIX = "unix://"


def _address(e: Endpoint) -> address_pb2.Address:
    """A socket address, or a pipe for a ServiceEntry endpoint `unix:///path` (as Istio)."""
    if e.address.startswith(UNIX_PREFIX):
        return address_pb2.Address(pipe=address_pb2.Pipe(path=e.address[len(UNIX_PREFIX) :]))
    return address_pb2.Address(
        socket_address=address_pb2.SocketAddress(address=e.address, port_value=e.port)
    )


def _lb_endpoint(e: Endpoint, speaks_mtls: bool) -> endpoint_components_pb2.LbEndpoint:
    lb = endpoint_components_pb2.LbEndpoint(
        endpoint=endpoint_components_pb2.Endpoint(address=_address(e)),
        load_balancing_weight=wrappers_pb2.UInt32Value(value=e.weight),
    )
    if speaks_mtls:
        mtls.mark_mtls(lb)
    metrics.tag_endpoint(lb, e)
    return lb


def load_assignment(
    cluster_name: str,
    endpoints: Sequence[Endpoint],
    subset_labels: Mapping[str, str],
    speaks_mtls: Callable[[Endpoint], bool] | None = None,
) -> endpoint_pb2.ClusterLoadAssignment:
    """`speaks_mtls` says which endpoints to label `tlsMode: istio` (none when omitted)."""
    selected = [e for e in endpoints if e.labels.matches(subset_labels)]
    selected.sort(key=lambda e: (e.address, e.port))
    lbs = [_lb_endpoint(e, speaks_mtls is not None and speaks_mtls(e)) for e in selected]
    return endpoint_pb2.ClusterLoadAssignment(
        cluster_name=cluster_name,
        endpoints=[endpoint_components_pb2.LocalityLbEndpoints(lb_endpoints=lbs)] if lbs else [],
    )
