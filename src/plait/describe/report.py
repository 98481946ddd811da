"""`describe`: everything that applies to one service, as one JSON-ready object.

Sections: `service` (ports, selector, workloads, identities), `virtualServices`,
`destinationRules`, `security` (per workload), `route` (when asked), `messages` (the
config messages about any resource involved). Pure: the caller loads the snapshot.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from plait.analysis import analyze
from plait.analysis.workloads import Workload
from plait.api import KubeService, Loaded
from plait.describe.policy import destination_rules_section
from plait.describe.route import RouteQuery, route_section
from plait.describe.routing import delegates_of, routes_host, virtual_services_section
from plait.describe.security import security_section
from plait.describe.workloads import selected_workloads, service_section
from plait.errors import ConfigMessage
from plait.model.authz import Policy, applies_to
from plait.model.registry import Service
from plait.model.snapshot import MeshSnapshot
from plait.translate.ratelimit import selects


def _involved(
    snapshot: MeshSnapshot,
    config: Sequence[Loaded],
    service: Service,
    workloads: Sequence[Workload],
) -> Iterable[Loaded]:
    """Every resource a section shows (VirtualServices, their delegates, DestinationRules,
    the Service, its Deployments, the policies that select them)."""
    yield from (
        i
        for i in config
        if isinstance(i.resource, KubeService)
        and i.resource.metadata.name == service.name
        and i.resource.metadata.namespace == service.namespace
    )
    yield from (w.source for w in workloads if w.source is not None)
    for vs_item in snapshot.virtual_services:
        if routes_host(snapshot, vs_item.resource, service):
            yield vs_item
            yield from delegates_of(snapshot, vs_item.resource)
    rules = snapshot.host_rules(service.hostname)
    yield from rules.sources if rules is not None else ()
    yield from snapshot.peer_authentications  # filtered below by the deciding policies
    for w in workloads:
        policies: tuple[Loaded[Policy], ...] = (
            *snapshot.authorization_policies,
            *snapshot.request_authentications,
        )
        yield from (i for i in policies if applies_to(snapshot, i, w.proxy))
        yield from (i for i in snapshot.rate_limits if selects(snapshot, i.resource, w.proxy))


def messages_for(
    snapshot: MeshSnapshot,
    config: Sequence[Loaded],
    service: Service,
    workloads: Sequence[Workload],
    security: Sequence[dict[str, Any]],
) -> list[ConfigMessage]:
    """The load, merge and analysis messages about the involved resources."""
    deciding = {
        d["policy"]
        for s in security
        for d in (s["peerAuthentication"]["workload"], *s["peerAuthentication"]["ports"].values())
        if d["policy"]
    }
    places = set()
    for item in _involved(snapshot, config, service, workloads):
        name = f"{item.resource.metadata.namespace}/{item.resource.metadata.name}"
        if item in snapshot.peer_authentications and name not in deciding:
            continue
        places.add((item.source.file, item.source.document))
    found = [*snapshot.messages, *analyze(snapshot, config)]
    seen: set[ConfigMessage] = set()
    out = []
    for m in found:
        if (m.file, m.document) in places and m not in seen:
            seen.add(m)
            out.append(m)
    return out


def describe(
    snapshot: MeshSnapshot,
    config: Sequence[Loaded],
    service: Service,
    query: RouteQuery | None = None,
) -> dict[str, Any]:
    """The whole description of `service` (see the module docstring); raises
    `route.UnknownCaller` when `query.caller` names no workload."""
    workloads = selected_workloads(snapshot, config, service)
    security = security_section(snapshot, service, workloads)
    return {
        "service": service_section(snapshot, service, workloads),
        "virtualServices": virtual_services_section(snapshot, service),
        "destinationRules": destination_rules_section(snapshot, service),
        "security": security,
        "route": route_section(snapshot, config, service, query) if query is not None else None,
        "messages": [
            m.to_json() for m in messages_for(snapshot, config, service, workloads, security)
        ],
    }
