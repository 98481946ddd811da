"""Headless Services (`clusterIP: None`) for a captured sidecar: the pod the app chose.

An app resolves a headless Service's name (or a StatefulSet pod's own name) to a pod IP
and connects to it, so its captured connection arrives at virtualOutbound with that pod's
address. istiod gives such a sidecar one outbound listener per ready endpoint address and
service port (pilot/pkg/networking/core/listener.go, `buildSidecarOutboundListeners`)
sending to an ORIGINAL_DST cluster, which connects to exactly where the app was going.
plait does the same, per endpoint (`pod_addresses`), with these choices:

- the listener (or filter chain) is at the endpoint's port, where the pod serves the
  service port and so where its clients connect; istiod uses the service port, the same
  port for the usual headless Service (a `targetPort` that differs is reached here too);
- a TCP/TLS port gets a listener `POD_IP_PORT` to the ORIGINAL_DST cluster; an HTTP port
  (declared or sniffed) gets a filter chain for the pod's /32 on the `0.0.0.0_PORT`
  listener whose HTTP connection manager reads the host's own route table
  (`names.headless_route`: the host's VirtualService rules or its default route under
  one `*` virtual host). So a request by pod IP, whose Host names no service, is routed
  and sent over mTLS like one by name; istiod routes HTTP by Host only and sends a
  request by pod IP to PassthroughCluster in plain text (istio#34679), which a STRICT
  pod refuses;
- the ORIGINAL_DST clusters (`names.original_dst_cluster`, one per cluster of the host:
  port and subset) carry the EDS cluster's policy, metadata and TLS; with auto mTLS they
  speak mTLS when every endpoint of the port does (a sidecar, PeerAuthentication not
  DISABLE on its port), else plain text, as istiod's `BestEffortInferServiceMTLSMode`
  decides for a headless Service. The EDS clusters stay, for the Service's name in the
  outbound table, explicit sidecars and gateways.

Pure.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.route.v3 import route_pb2
from google.protobuf import any_pb2

from plait.model.peerauth import PeerAuthentications
from plait.model.registry import Endpoint, Protocol, Service
from plait.model.scope import Scope
from plait.model.snapshot import MeshSnapshot
from plait.translate import mtls, names
from plait.translate.hostbuild import HostBuild
from plait.translate.resource import Resource


@dataclass(frozen=True)
class PodAddress:
    """One ready endpoint of a headless Service port, as a captured app reaches it."""

    host: str
    address: str
    port: int  # the endpoint's port: where the app connects
    service_port: int
    protocol: Protocol


def _is_ip(address: str) -> bool:
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return False
    return True


def pod_addresses(
    services: Iterable[Service],
    endpoints_for: Callable[[str, int], Iterable[Endpoint]],
    own_address: str,
    ports_of: Callable[[Service], Iterable[int]] | None = None,
) -> list[PodAddress]:
    """Every (pod IP, port) of the headless services' TCP-borne ports (`ports_of`: the
    service ports a scope reaches, default all), but the proxy's own (its app calling
    itself is not captured outbound) and addresses that are not IPs. An address and port
    two services share goes to the first by hostname: one listener each."""
    out: dict[tuple[str, int], PodAddress] = {}
    for svc in sorted(services, key=lambda s: s.hostname):
        if not svc.headless:
            continue
        reached = set(ports_of(svc)) if ports_of is not None else None
        for port in svc.ports:
            if port.protocol is Protocol.UDP or (reached is not None and port.port not in reached):
                continue
            for ep in endpoints_for(svc.hostname, port.port):
                if ep.address == own_address or not _is_ip(ep.address):
                    continue
                out.setdefault(
                    (ep.address, ep.port),
                    PodAddress(svc.hostname, ep.address, ep.port, port.port, port.protocol),
                )
    return [out[key] for key in sorted(out)]


def is_headless(snapshot: MeshSnapshot, hostname: str) -> bool:
    service = snapshot.services.get(hostname)
    return service is not None and service.headless


def headless_services(snapshot: MeshSnapshot) -> tuple[Service, ...]:
    return tuple(s for s in snapshot.services.values() if s.headless)


def headless_endpoints(
    snapshot: MeshSnapshot, services: tuple[Service, ...]
) -> tuple[tuple[tuple[str, int], tuple[Endpoint, ...]], ...]:
    """The endpoints of headless services (`services`, those of `headless_services`):
    captured sidecars' listeners name them."""
    if not services:
        return ()
    return tuple(
        (key, eps) for key, eps in snapshot.endpoints.items() if is_headless(snapshot, key[0])
    )


def reached_pods(
    snapshot: MeshSnapshot, services: tuple[Service, ...], own_address: str, scope: Scope | None
) -> list[PodAddress]:
    """The headless services' pods a captured sidecar at `own_address` reaches."""
    if not services:
        return []
    return pod_addresses(
        services,
        snapshot.endpoints_for,
        own_address,
        None if scope is None else (lambda svc: scope.clusters.get(svc.hostname, ())),
    )


def original_dst(cluster: cluster_pb2.Cluster, mtls: bool) -> cluster_pb2.Cluster:
    """The ORIGINAL_DST twin of a headless host's EDS cluster: its policy and metadata,
    no endpoints of its own; auto mTLS (transport socket matches, which need endpoint
    metadata) becomes one socket: mTLS when `mtls`, else plain text."""
    names_ = names.parse_cluster(cluster.name)
    assert names_ is not None, cluster.name  # made by clusters.outbound_cluster
    twin = cluster_pb2.Cluster()
    twin.CopyFrom(cluster)
    twin.name = names.original_dst_cluster(names_.host, names_.port, names_.subset)
    twin.type = cluster_pb2.Cluster.ORIGINAL_DST
    twin.lb_policy = cluster_pb2.Cluster.CLUSTER_PROVIDED
    for field in ("eds_cluster_config", "load_assignment", "load_balancing_policy"):
        twin.ClearField(field)
    lb_config = twin.WhichOneof("lb_config")
    if lb_config is not None:
        twin.ClearField(lb_config)
    if twin.transport_socket_matches:
        socket = twin.transport_socket_matches[0].transport_socket  # the mTLS match
        if mtls:
            twin.transport_socket.CopyFrom(socket)
        twin.ClearField("transport_socket_matches")
    return twin


def twin_clusters(
    snapshot: MeshSnapshot,
    built: HostBuild,
    ports: frozenset[int],
    peer_auth: PeerAuthentications,
) -> list[Resource]:
    """The ORIGINAL_DST twins (`original_dst`) of a host's clusters, every subset, at
    these service ports; mTLS by `all_speak_mtls` over each port's endpoints."""
    service = snapshot.services[built.hostname]
    out = []
    for resource, number in zip(built.clusters, built.cluster_ports, strict=True):
        port = service.port(number)
        if number not in ports or port is None:
            continue
        eds = cluster_pb2.Cluster()
        any_pb2.Any.FromString(resource.body).Unpack(eds)
        speaks = mtls.endpoint_mtls(peer_auth, port, None)
        speak = all_speak_mtls(snapshot.endpoints_for(built.hostname, number), speaks)
        twin = original_dst(eds, speak)
        out.append(Resource.pack(twin.name, twin))
    return out


def to_original_dst(table: route_pb2.RouteConfiguration, host: str) -> None:
    """Send the table's routes to `host` to its ORIGINAL_DST clusters instead of EDS."""

    def rename(cluster: str) -> str:
        parsed = names.parse_cluster(cluster)
        if parsed is None or parsed.host != host or parsed.direction != "outbound":
            return cluster
        return names.original_dst_cluster(host, parsed.port, parsed.subset)

    for vhost in table.virtual_hosts:
        for route in vhost.routes:
            if not route.HasField("route"):
                continue
            action = route.route
            if action.cluster:
                action.cluster = rename(action.cluster)
            for weighted in action.weighted_clusters.clusters:
                weighted.name = rename(weighted.name)


def all_speak_mtls(eps: Iterable[Endpoint], speaks: Callable[[Endpoint], bool]) -> bool:
    """istiod's rule for a headless Service: mTLS when every endpoint speaks it."""
    found = list(eps)
    return bool(found) and all(speaks(e) for e in found)


def http_ports(pods: Iterable[PodAddress]) -> Mapping[tuple[str, int], None]:
    """The (host, service port) pairs that get a route table: those reached over HTTP."""
    return dict.fromkeys((p.host, p.service_port) for p in pods if p.protocol.is_http)
