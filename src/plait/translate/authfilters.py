"""The request authentication and authorization filters of one proxy, and their clusters.

Entry points for the proxy translator: `security_filters` goes first in the HTTP filter
chain of the sidecar's inbound HCM and of the gateway's HCMs (before fault, CORS, rate
limit and router, as in Istio), `security_clusters` goes into the proxy's CDS. A proxy no
policy selects gets no filter and no cluster, so unprotected proxies pay nothing.

Order (Istio's): `jwt_authn` (a bad token → 401; the payload goes to metadata), then RBAC
AUDIT (log only), DENY, ALLOW (translate/rbac.py). Pure: no I/O.
"""

from __future__ import annotations

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.listener.v3 import listener_components_pb2 as lc
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)

from plait.model.authz import authorization_policies_for, request_authentications_for
from plait.model.peerauth import served_ports
from plait.model.proxy import Proxy, ProxyKind, Traffic
from plait.model.snapshot import MeshSnapshot
from plait.translate.jwt import jwks_clusters, jwt_filter
from plait.translate.rbac import RbacContext, rbac_filters
from plait.translate.rbactcp import tcp_rbac_filters


def rbac_context(snapshot: MeshSnapshot, proxy: Proxy) -> RbacContext:
    """Trust domain, and where each workload port's requests arrive on this proxy: a
    gateway's server ports at their host ports, a sidecar's workload ports at its one
    inbound listener."""
    ports: dict[int, int] = {}
    if proxy.kind is ProxyKind.GATEWAY:
        ports = dict(proxy.gateway_ports)
    elif proxy.traffic is Traffic.CAPTURED and proxy.app_port is not None:
        served = served_ports(snapshot, proxy.namespace, proxy.labels)
        ports = {p: proxy.app_port for p in served}  # the original destination: the app's
    elif proxy.inbound_port is not None:
        served = served_ports(snapshot, proxy.namespace, proxy.labels)
        ports = {p: proxy.inbound_port for p in served}
    return RbacContext(trust_domain=snapshot.mesh.trust_domain, ports=ports)


def security_filters(snapshot: MeshSnapshot, proxy: Proxy) -> list[hcm_pb2.HttpFilter]:
    """jwt_authn, then RBAC AUDIT, DENY, ALLOW; empty when no policy applies."""
    jwt = jwt_filter(snapshot, request_authentications_for(snapshot, proxy))
    rbac = rbac_filters(authorization_policies_for(snapshot, proxy), rbac_context(snapshot, proxy))
    return ([jwt] if jwt is not None else []) + rbac


def tcp_security_filters(snapshot: MeshSnapshot, proxy: Proxy) -> list[lc.Filter]:
    """Network RBAC AUDIT, DENY, ALLOW for a captured sidecar's TCP chains (`rbactcp`)."""
    policies = authorization_policies_for(snapshot, proxy)
    return tcp_rbac_filters(policies, rbac_context(snapshot, proxy))


def security_clusters(snapshot: MeshSnapshot, proxy: Proxy) -> list[cluster_pb2.Cluster]:
    """Clusters for the remote JWKS servers this proxy's RequestAuthentications name."""
    return jwks_clusters(snapshot, request_authentications_for(snapshot, proxy))


__all__ = ["rbac_context", "security_clusters", "security_filters", "tcp_security_filters"]
