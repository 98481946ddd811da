"""The protocol a sidecar speaks to its own app, and the upstream HTTP options for it.

In local mode an app listens on one port (`$PORT`) and every port of every Service that
selects it is delivered there, so the protocol of the app port is the one all those
Service ports declare: h2c when every one is HTTP/2 or gRPC, HTTP/1.1 when every one is
HTTP; otherwise (mixed, undeclared, or no Service selects the workload) the sidecar uses
the downstream's own HTTP version, which is what Istio does for a sniffed port. Pure: the
answer is a function of the snapshot and the proxy's namespace and labels.
"""

from __future__ import annotations

from envoy.config.core.v3 import protocol_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2 as hpo_pb2

from plait.model.labels import Labels
from plait.model.registry import Protocol
from plait.model.snapshot import MeshSnapshot

HTTP_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"


class AppProtocols:
    """`app_protocol(namespace, labels)` for one snapshot, memoised per (namespace, labels)
    because every replica of a Deployment shares them."""

    def __init__(self, snapshot: MeshSnapshot) -> None:
        self._services = snapshot.service_selectors
        self._memo: dict[tuple[str, Labels], Protocol] = {}

    def app_protocol(self, namespace: str, labels: Labels) -> Protocol:
        key = (namespace, labels)
        found = self._memo.get(key)
        if found is None:
            declared = {
                port.protocol
                for service in self._services.selecting(namespace, labels)
                for port in service.ports
                if port.protocol.is_http
            }
            found = _common(declared)
            self._memo[key] = found
        return found


def _common(declared: set[Protocol]) -> Protocol:
    if declared and all(p.is_http2 for p in declared):
        return Protocol.GRPC if declared == {Protocol.GRPC} else Protocol.HTTP2
    if declared == {Protocol.HTTP}:
        return Protocol.HTTP
    return Protocol.UNKNOWN


def upstream_http_options(protocol: Protocol) -> hpo_pb2.HttpProtocolOptions | None:
    """HTTP/2 for h2/gRPC; the downstream's version when UNKNOWN; None (HTTP/1.1) for HTTP.

    https://www.envoyproxy.io/docs/envoy/latest/api-v3/extensions/upstreams/http/v3/http_protocol_options.proto
    """
    if protocol.is_http2:
        return hpo_pb2.HttpProtocolOptions(
            explicit_http_config=hpo_pb2.HttpProtocolOptions.ExplicitHttpConfig(
                http2_protocol_options=protocol_pb2.Http2ProtocolOptions()
            )
        )
    if protocol == Protocol.UNKNOWN:
        return hpo_pb2.HttpProtocolOptions(
            use_downstream_protocol_config=hpo_pb2.HttpProtocolOptions.UseDownstreamHttpConfig(
                http_protocol_options=protocol_pb2.Http1ProtocolOptions(),
                http2_protocol_options=protocol_pb2.Http2ProtocolOptions(),
            )
        )
    return None
