"""Is a proxy's configuration consistent: does it hold every resource it names?

The check of go-control-plane's `Snapshot.Consistent` (pkg/cache/v3/snapshot.go): every
EDS name a cluster refers to and every RDS name a listener refers to must be in the
proxy's resources, and (`exact`) every endpoint set and route table must be named by
one. Envoy would otherwise keep a cluster or listener warming until its initial fetch
times out, and then serve it empty. Clusters and listeners themselves are wildcard
subscriptions, so nothing refers to them.

References are read from the Envoy messages themselves when they are packed
(`references`, stored on `Resource.refs`), so the check costs set lookups; the
translator checks each proxy's own resources against the config it assembles (shared
resources were checked once per snapshot), and the translation tests check every whole
config exactly.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from google.protobuf.message import Message

from plait.translate import typeurls

if TYPE_CHECKING:
    from plait.translate.resource import ProxyConfig, Resource

Ref = tuple[str, str]
"""(type URL, name) of a resource that another one refers to."""

_HCM_TYPE = "type.googleapis.com/" + hcm_pb2.HttpConnectionManager.DESCRIPTOR.full_name
_REFERENCED = (typeurls.ENDPOINT, typeurls.ROUTE)


def references(message: Message) -> tuple[Ref, ...]:
    """What `message` names by xDS: an EDS cluster its endpoint set, a listener the route
    table of each HTTP connection manager that uses RDS."""
    if isinstance(message, cluster_pb2.Cluster):
        if message.type == cluster_pb2.Cluster.EDS:
            name = message.eds_cluster_config.service_name or message.name
            return ((typeurls.ENDPOINT, name),)
        return ()
    if isinstance(message, listener_pb2.Listener):
        chains = [*message.filter_chains]
        if message.HasField("default_filter_chain"):
            chains.append(message.default_filter_chain)
        return tuple(dict.fromkeys(r for chain in chains for r in _chain_routes(chain)))
    return ()


def _chain_routes(chain: listener_components_pb2.FilterChain) -> list[Ref]:
    out: list[Ref] = []
    for f in chain.filters:
        if f.typed_config.type_url != _HCM_TYPE:
            continue
        hcm = hcm_pb2.HttpConnectionManager()
        f.typed_config.Unpack(hcm)
        if hcm.HasField("rds"):
            out.append((typeurls.ROUTE, hcm.rds.route_config_name))
    return out


def dangling(config: ProxyConfig, among: Iterable[Resource] | None = None) -> list[str]:
    """Names that resources of `config` (or just those `among` them) refer to and
    `config` lacks, as readable problems."""
    resources = among if among is not None else _all(config)
    return [
        f"{typeurls.SHORT_NAMES[t]} {name!r} is named by {typeurls.SHORT_NAMES[r.type_url]} "
        f"{r.name!r} but missing"
        for r in resources
        for t, name in r.refs
        if name not in config.resources(t)
    ]


def unreferenced(config: ProxyConfig) -> list[str]:
    """Endpoint sets and route tables in `config` that no cluster or listener names."""
    named = {ref for r in _all(config) for ref in r.refs}
    return [
        f"{typeurls.SHORT_NAMES[t]} {name!r} is named by no "
        f"{'cluster' if t == typeurls.ENDPOINT else 'listener'}"
        for t in _REFERENCED
        for name in config.resources(t)
        if (t, name) not in named
    ]


def consistent(config: ProxyConfig) -> list[str]:
    """Every problem `exact` consistency finds (empty: consistent)."""
    return dangling(config) + unreferenced(config)


def _all(config: ProxyConfig) -> list[Resource]:
    return [r for by_name in config.by_type.values() for r in by_name.values()]


__all__ = ["Ref", "consistent", "dangling", "references", "unreferenced"]
