"""What the translation of a new snapshot may take over from the previous snapshot's.

A built resource is reused only when exactly the inputs it was built from are equal
(compared by value; pydantic models and frozen dataclasses compare field by field, and
equal objects short-circuit), as istiod's xDS cache keys each resource by what it depends
on. Each function here names the inputs of one kind of resource; they must list every
part of the snapshot the translation of that resource reads (the imports of the
modules it calls show which: `tests/unit/translate/test_translate_reuse.py` checks that
reused configs equal fresh ones for changes of each kind).

* A sidecar's own resources (its listeners, inbound cluster and route table, JWKS
  clusters) read the proxy, the services (application protocols, JWKS hosts, rate-limit
  services, authorization; cluster IPs for captured sidecars), the security policies, the
  gateways (authorization of gateway-bound policies), the mesh settings, the Telemetry
  resources and the JWKS URIs found by OpenID discovery, and for captured sidecars the
  VirtualServices' `tcp` and `tls` rules (`l4_routing`) — not HTTP routing, not endpoints.
* Route tables (the sidecars' outbound table, the gateways' tables) read the services,
  VirtualServices, DestinationRules, gateways and mesh settings — not endpoints.
* An outbound host's clusters and endpoint sets read that host's service, its merged
  DestinationRules and its endpoints, plus the mesh settings and PeerAuthentications
  (endpoint mTLS), which may select workloads through any service.

Endpoints are read by nothing else (only `Translator._host`), so a snapshot that differs
from the previous one in its endpoints alone (`endpoint_change`) takes the fast path:
only the affected hosts are rebuilt and everything else is taken over as it is.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from plait.model.snapshot import MeshSnapshot

# What a snapshot may differ in and still be an endpoint-only change: translation reads
# neither its version nor its messages.
_NOT_READ = frozenset({"version", "messages", "endpoints"})
_COMPARED = tuple(f.name for f in fields(MeshSnapshot) if f.name not in _NOT_READ)


def endpoint_change(old: MeshSnapshot, new: MeshSnapshot) -> frozenset[str] | None:
    """The hostnames whose endpoints differ, when every other input of translation is the
    very same object in both snapshots (as `model.snapshot.with_instances` makes them);
    None otherwise (then the caller compares inputs by value, `own_inputs` and the rest).

    Identity, not equality: a fully rebuilt snapshot never takes this path, so an
    endpoint event that came with any other change is translated in full.
    """
    if any(getattr(old, name) is not getattr(new, name) for name in _COMPARED):
        return None
    before, after = old.endpoints, new.endpoints
    if before.keys() != after.keys():
        return None
    return frozenset(
        key[0] for key, eps in after.items() if (was := before[key]) is not eps and was != eps
    )


def own_inputs(snapshot: MeshSnapshot) -> tuple[Any, ...]:
    """What a sidecar's own resources depend on, besides the proxy."""
    return (
        snapshot.services,
        snapshot.peer_authentications,
        snapshot.authorization_policies,
        snapshot.request_authentications,
        snapshot.rate_limits,
        snapshot.gateways,
        snapshot.mesh,
        snapshot.telemetries,
        snapshot.discovered_jwks_uris,
        l4_routing(snapshot),
    )


def l4_routing(snapshot: MeshSnapshot) -> tuple[Any, ...]:
    """The VirtualServices with `tcp` or `tls` rules (captured sidecars' listeners read
    them), each with what decides the hosts it answers for."""
    return tuple(
        (vs.metadata.namespace, vs.metadata.name, vs.spec.hosts, vs.spec.gateways)
        + (vs.spec.tcp, vs.spec.tls)
        for vs in (item.resource for item in snapshot.virtual_services)
        if vs.spec.tcp or vs.spec.tls
    )


def route_inputs(snapshot: MeshSnapshot) -> tuple[Any, ...]:
    """What route tables depend on, besides the caller's table key."""
    return (
        snapshot.services,
        snapshot.virtual_services,
        snapshot.destination_rules,
        snapshot.gateways,
        snapshot.mesh,
    )


def host_context(snapshot: MeshSnapshot) -> tuple[Any, ...]:
    """What every outbound host's resources depend on."""
    policies = snapshot.peer_authentications
    return (snapshot.mesh, policies, snapshot.services if policies else None)


def host_inputs(snapshot: MeshSnapshot, hostname: str) -> tuple[Any, ...]:
    """What one outbound host's clusters and endpoint sets depend on (with the context)."""
    service = snapshot.services[hostname]
    return (
        service,
        snapshot.host_rules(hostname),
        tuple(snapshot.endpoints_for(hostname, port.port) for port in service.ports),
    )
