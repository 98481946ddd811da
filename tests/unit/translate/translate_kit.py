"""Small builders for translation tests: YAML text → snapshot, proxies, unpacked resources."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from google.protobuf import any_pb2
from google.protobuf.message import Message

from plait.api import load_text
from plait.model.labels import Labels
from plait.model.proxy import Proxy, ProxyKind, node_id
from plait.model.registry import PortMap, WorkloadInstance
from plait.model.snapshot import MeshSnapshot, build_snapshot
from plait.translate import typeurls
from plait.translate.resource import ProxyConfig, Resource

M = TypeVar("M", bound=Message)

REVIEWS = "reviews.default.svc.cluster.local"
# The Service most tests route to; test meshes start with it.
REVIEWS_SERVICE = """
apiVersion: v1
kind: Service
metadata: {name: reviews}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 8080}]
---
"""


def snapshot(
    text: str, instances: Sequence[WorkloadInstance] = (), version: int = 1
) -> MeshSnapshot:
    result = load_text(text, "mesh.yaml")
    assert not result.errors, [str(m) for m in result.errors]
    return build_snapshot(result.resources, instances, version)


def virtual_service(name: str, gateways: str, hosts: str = "[reviews]", ns: str = "default") -> str:
    """A VirtualService for `hosts`, bound to `gateways`, routing to the subset `name`."""
    return f"""---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: {name}, namespace: {ns}}}
spec:
  hosts: {hosts}
  gateways: {gateways}
  http: [{{route: [{{destination: {{host: reviews.default, subset: {name}}}}}]}}]
"""


def instance(name: str, port: int, namespace: str = "default", **labels: str) -> WorkloadInstance:
    return WorkloadInstance(
        name=name,
        workload=name.rsplit("-", 1)[0],
        namespace=namespace,
        labels=Labels.of(labels),
        service_account=labels.get("app", "default"),
        address="127.0.0.1",
        ports=PortMap.all_to(port),
    )


def sidecar(
    instance_name: str = "frontend-0",
    namespace: str = "default",
    inbound_port: int | None = 21001,
    app_port: int | None = 21002,
    outbound_port: int | None = 21003,
) -> Proxy:
    return Proxy(
        id=node_id(ProxyKind.SIDECAR, instance_name, namespace),
        kind=ProxyKind.SIDECAR,
        workload=instance_name.rsplit("-", 1)[0],
        namespace=namespace,
        labels=Labels.of({"app": instance_name.rsplit("-", 1)[0]}),
        inbound_port=inbound_port,
        app_port=app_port,
        outbound_port=outbound_port,
    )


def gateway(*ports: tuple[int, int]) -> Proxy:
    return Proxy(
        id=node_id(ProxyKind.GATEWAY, "istio-ingressgateway", "istio-system"),
        kind=ProxyKind.GATEWAY,
        workload="istio-ingressgateway",
        namespace="istio-system",
        labels=Labels.of({"istio": "ingressgateway"}),
        gateway_ports=tuple(ports),
    )


def unpack(resource: Resource, cls: type[M]) -> M:
    wrapped = any_pb2.Any()
    wrapped.ParseFromString(resource.body)
    message: M = cls()
    assert wrapped.Unpack(message), (resource.type_url, cls)
    return message


def clusters(config: ProxyConfig) -> dict[str, cluster_pb2.Cluster]:
    return {
        n: unpack(r, cluster_pb2.Cluster) for n, r in config.resources(typeurls.CLUSTER).items()
    }


def load_assignments(config: ProxyConfig) -> dict[str, endpoint_pb2.ClusterLoadAssignment]:
    return {
        n: unpack(r, endpoint_pb2.ClusterLoadAssignment)
        for n, r in config.resources(typeurls.ENDPOINT).items()
    }


def listeners(config: ProxyConfig) -> dict[str, listener_pb2.Listener]:
    return {
        n: unpack(r, listener_pb2.Listener) for n, r in config.resources(typeurls.LISTENER).items()
    }


def routes(config: ProxyConfig) -> dict[str, route_pb2.RouteConfiguration]:
    return {
        n: unpack(r, route_pb2.RouteConfiguration)
        for n, r in config.resources(typeurls.ROUTE).items()
    }


def chain_hcm(chain: listener_components_pb2.FilterChain) -> hcm_pb2.HttpConnectionManager:
    (f,) = chain.filters
    assert f.name == "envoy.filters.network.http_connection_manager"
    out = hcm_pb2.HttpConnectionManager()
    assert f.typed_config.Unpack(out)
    return out


def hcm(listener: listener_pb2.Listener) -> hcm_pb2.HttpConnectionManager:
    """The HCM of a listener with one filter chain."""
    (chain,) = listener.filter_chains
    return chain_hcm(chain)


def hcms(listener: listener_pb2.Listener) -> list[hcm_pb2.HttpConnectionManager]:
    """The HCM of every filter chain (the inbound listener has one per transport)."""
    return [chain_hcm(c) for c in listener.filter_chains]
