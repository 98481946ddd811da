"""The VirtualService section: which VirtualServices route the host, on which gateways,
which one the sidecars use, and each `http` rule in one line."""

from __future__ import annotations

import fnmatch
from typing import Any

from plait.analysis.report import key
from plait.api import Loaded, VirtualService
from plait.api.common import StringMatch
from plait.api.virtualservice import Destination, HTTPMatchRequest, HTTPRoute
from plait.model.indexes import MESH_GATEWAY, gateways_of
from plait.model.registry import Service
from plait.model.snapshot import MeshSnapshot
from plait.translate.vhosts import mesh_virtual_services


def routes_host(snapshot: MeshSnapshot, vs: VirtualService, service: Service) -> bool:
    """A host of `vs` names the service (short names resolved in the VS's namespace) or is a
    wildcard that covers its hostname on a named Gateway (sidecars ignore wildcards)."""
    on_gateway = any(g != MESH_GATEWAY for g in gateways_of(vs))
    for host in snapshot.vs_hosts(vs):
        if snapshot.resolve_host(host, vs.metadata.namespace) == service.hostname:
            return True
        if on_gateway and host.startswith("*") and fnmatch.fnmatchcase(service.hostname, host):
            return True
    return False


def _string(m: StringMatch) -> str:
    if m.exact is not None:
        return f"={m.exact}"
    if m.prefix is not None:
        return f"^{m.prefix}"
    return f"~{m.regex}"


def match_text(m: HTTPMatchRequest) -> str:
    parts = []
    if m.uri is not None:
        parts.append(f"uri{_string(m.uri)}")
    if m.method is not None:
        parts.append(f"method{_string(m.method)}")
    if m.authority is not None:
        parts.append(f"authority{_string(m.authority)}")
    parts += [f"{k}{_string(v)}" for k, v in sorted(m.headers.items())]
    parts += [f"!{k}{_string(v)}" for k, v in sorted(m.without_headers.items())]
    parts += [f"?{k}{_string(v)}" for k, v in sorted(m.query_params.items())]
    if m.port is not None:
        parts.append(f"port={m.port}")
    parts += [f"source {k}={v}" for k, v in sorted(m.source_labels.items())]
    if m.source_namespace:
        parts.append(f"source ns={m.source_namespace}")
    if m.gateways:
        parts.append("gateways=" + ",".join(m.gateways))
    return " ".join(parts) or "any"


def _dest(d: Destination) -> str:
    text = d.host + (f":{d.port.number}" if d.port is not None and d.port.number else "")
    return text + (f" ({d.subset})" if d.subset else "")


def rule_text(rule: HTTPRoute) -> str:
    """`match → destinations`, then timeout, retries, fault, mirror, as one line."""
    when = " OR ".join(match_text(m) for m in rule.match) if rule.match else "any"
    if rule.delegate is not None:
        target = f"delegate {rule.delegate.namespace or ''}/{rule.delegate.name}".replace(" /", " ")
    elif rule.redirect is not None:
        target = f"redirect {rule.redirect.authority or ''}{rule.redirect.uri or ''}"
    elif rule.direct_response is not None:
        target = f"respond {rule.direct_response.status}"
    else:
        weighted = len(rule.route) > 1
        target = ", ".join(
            _dest(d.destination) + (f" {d.weight or 0}%" if weighted else "") for d in rule.route
        )
    extras = []
    if rule.timeout is not None:
        extras.append(f"timeout {rule.timeout}")
    if rule.retries is not None:
        r = rule.retries
        on = f" on {r.retry_on}" if r.retry_on else ""
        per_try = f" per try {r.per_try_timeout}" if r.per_try_timeout else ""
        extras.append(f"retries {r.attempts if r.attempts is not None else '-'}{per_try}{on}")
    if rule.fault is not None:
        if rule.fault.delay is not None:
            extras.append(f"fault delay {rule.fault.delay.fixed_delay or '?'}")
        if rule.fault.abort is not None:
            code = rule.fault.abort.http_status or rule.fault.abort.grpc_status
            extras.append(f"fault abort {code}")
    mirrors = [rule.mirror] if rule.mirror is not None else []
    mirrors += [m.destination for m in rule.mirrors]
    if mirrors:
        extras.append("mirror " + ", ".join(_dest(m) for m in mirrors))
    line = f"{when} → {target}"
    return line + ("; " + "; ".join(extras) if extras else "")


def delegates_of(snapshot: MeshSnapshot, vs: VirtualService) -> list[Loaded[VirtualService]]:
    """The delegate VirtualServices `vs`'s rules name (those that exist), in snapshot order."""
    ns = vs.metadata.namespace
    wanted = {(r.delegate.namespace or ns, r.delegate.name) for r in vs.spec.http if r.delegate}
    return [
        i
        for i in snapshot.virtual_services
        if (i.resource.metadata.namespace, i.resource.metadata.name) in wanted
    ]


def _entry(
    item: Loaded[VirtualService], role: str, gateways: list[str], active: bool
) -> dict[str, Any]:
    vs = item.resource
    return {
        "name": key(item),
        "file": item.source.file,
        "role": role,
        "gateways": gateways,
        "activeForMesh": active,
        "rules": [rule_text(r) for r in vs.spec.http],
        "tcp": len(vs.spec.tcp),
        "tls": len(vs.spec.tls),
    }


def virtual_services_section(snapshot: MeshSnapshot, service: Service) -> list[dict[str, Any]]:
    """Every VirtualService for the host (in snapshot order), then the delegates they use.

    For sidecars only the first one bound to `mesh` applies (`activeForMesh`); on a named
    Gateway they are merged in the same order (see `analysis.conflicts`)."""
    winner = mesh_virtual_services(snapshot).get(service.hostname)
    out: list[dict[str, Any]] = []
    delegates: list[Loaded[VirtualService]] = []
    for item in snapshot.virtual_services:
        vs = item.resource
        if not routes_host(snapshot, vs, service):
            continue
        gateways = gateways_of(vs)
        active = item is winner
        role = "shadowed" if MESH_GATEWAY in gateways and not active else "routes"
        out.append(_entry(item, role, gateways, active))
        delegates += [d for d in delegates_of(snapshot, vs) if d not in delegates]
    listed = {e["name"] for e in out}
    out += [_entry(d, "delegate", [], False) for d in delegates if key(d) not in listed]
    return out
