"""\"How a request would be routed\": the caller's sidecar table, evaluated for one request.

The table is built exactly as for the caller's sidecar (`sidecar_routes` with the caller's
namespace, labels and Sidecar scope), so the answer is what Envoy would do, not a
re-reading of the VirtualService; `evaluate` does the matching.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from plait.analysis.workloads import Workload, workloads_of
from plait.api import Loaded
from plait.describe.evaluate import Request, evaluate, find_vhost
from plait.model.registry import Service
from plait.model.snapshot import MeshSnapshot
from plait.translate.scoped import scope_for
from plait.translate.vhosts import sidecar_routes


@dataclass(frozen=True)
class RouteQuery:
    """The request to route: path (with query), method, headers; the calling workload
    (`name` or `namespace/name`; None: an unnamed caller in the service's namespace);
    the service port (None: the first HTTP port)."""

    path: str = "/"
    method: str = "GET"
    headers: Mapping[str, str] = field(default_factory=dict)
    caller: str | None = None
    port: int | None = None


class UnknownCaller(LookupError):
    """`--from` names no Deployment of the configuration."""


def find_caller(snapshot: MeshSnapshot, config: Sequence[Loaded], name: str) -> Workload:
    ns, _, short = name.rpartition("/")
    for w in workloads_of(config, snapshot):
        if w.name == short and (not ns or w.namespace == ns):
            return w
    known = ", ".join(sorted(w.label() for w in workloads_of(config, snapshot))) or "none"
    raise UnknownCaller(f"no workload '{name}' (known: {known})")


def route_section(
    snapshot: MeshSnapshot, config: Sequence[Loaded], service: Service, query: RouteQuery
) -> dict[str, Any]:
    """The route the request takes and its clusters with weights; raises UnknownCaller."""
    caller = find_caller(snapshot, config, query.caller) if query.caller else None
    port = query.port
    if port is None:
        port = next((p.port for p in service.ports if p.protocol.is_http), None)
    found = service.port(port) if port is not None else None
    head: dict[str, Any] = {
        "method": "envoy-route-table",
        "caller": caller.label() if caller is not None else None,
        "request": {"path": query.path, "method": query.method, "headers": dict(query.headers)},
        "port": port,
    }
    if found is None or not found.protocol.is_http:
        return head | {"note": f"no HTTP port {port if port else ''} on {service.hostname}"}
    namespace = caller.namespace if caller is not None else service.namespace
    proxy = caller.proxy if caller is not None else None
    scope = scope_for(snapshot, proxy) if proxy is not None else None
    table = sidecar_routes(snapshot, namespace, proxy, scope)
    vhost = find_vhost(table, f"{service.hostname}:{port}")
    if vhost is None:
        note = f"no virtual host for {service.hostname}:{port}"
        if scope is not None:
            note += (
                " in the caller's scope (Sidecar, exportTo): its outbound traffic policy "
                f"{scope.outbound_mode.value} applies"
            )
        return head | {"note": note}
    request = Request(
        path=query.path,
        method=query.method.upper(),
        headers={k.lower(): v for k, v in query.headers.items()},
        authority=f"{service.hostname}:{port}",
    )
    return head | evaluate(vhost, request).to_json()
