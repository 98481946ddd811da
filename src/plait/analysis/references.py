"""References between resources that lead nowhere (istioctl analyze: IST0101, IST0112).

Warnings, not errors: Istio accepts such config (the target may be created later) and so
does plait, but requests that hit it fail. Each message says what happens and what to fix:

- a destination host that is no Service or ServiceEntry host (short names resolve in the
  VirtualService's namespace) — requests get 503 (no cluster);
- a destination port that the service does not have, or no port for a service with
  several ports on a Gateway-bound VirtualService (the gateway cannot tell which);
- a subset no DestinationRule in force for that host defines — 503 (no cluster);
- a Gateway named in `gateways` (or a match's `gateways`) that does not exist;
- a `delegate` naming a VirtualService that does not exist or has `hosts` (so is no
  delegate) — the delegating rule is dropped;
- a DestinationRule for a host no Service or ServiceEntry has.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from plait.analysis.report import finding, key
from plait.api import Loaded, VirtualService
from plait.api.destinationrule import DestinationRule
from plait.api.virtualservice import Destination
from plait.errors import ConfigMessage
from plait.model.indexes import MESH_GATEWAY, gateway_key, gateways_of
from plait.model.snapshot import MeshSnapshot

Loc = list[str | int]


def reference_problems(snapshot: MeshSnapshot) -> list[ConfigMessage]:
    """Warnings about every VirtualService's and DestinationRule's references."""
    out: list[ConfigMessage] = []
    gateways = {key(g) for g in snapshot.gateways}
    virtual_services = {key(v): v for v in snapshot.virtual_services}
    for item in snapshot.virtual_services:
        vs = item.resource
        out += _destinations(snapshot, item, vs)
        out += _gateways(item, vs, gateways)
        out += _delegates(item, vs, virtual_services)
    for rule in snapshot.destination_rules:
        out += _rule_host(snapshot, rule)
    return out


def destinations(vs: VirtualService) -> Iterator[tuple[Loc, Destination]]:
    """Every Destination of a VirtualService with its path: routes and mirrors."""
    for i, rule in enumerate(vs.spec.http):
        for k, d in enumerate(rule.route):
            yield ["spec", "http", i, "route", k, "destination"], d.destination
        if rule.mirror is not None:
            yield ["spec", "http", i, "mirror"], rule.mirror
        for k, m in enumerate(rule.mirrors):
            yield ["spec", "http", i, "mirrors", k, "destination"], m.destination
    for i, tcp in enumerate(vs.spec.tcp):
        for k, rd in enumerate(tcp.route):
            yield ["spec", "tcp", i, "route", k, "destination"], rd.destination
    for i, tls in enumerate(vs.spec.tls):
        for k, rd in enumerate(tls.route):
            yield ["spec", "tls", i, "route", k, "destination"], rd.destination


def _destinations(snapshot: MeshSnapshot, item: Loaded, vs: VirtualService) -> list[ConfigMessage]:
    out: list[ConfigMessage] = []
    ns = vs.metadata.namespace
    on_gateway = any(g != MESH_GATEWAY for g in gateways_of(vs))
    for loc, d in destinations(vs):
        host = snapshot.resolve_host(d.host, ns)
        service = snapshot.service(host)
        if service is None:
            resolved = f" (in namespace {ns}: {host})" if host != d.host else ""
            out.append(
                finding(
                    item,
                    [*loc, "host"],
                    f"host '{d.host}'{resolved} is not a Service or ServiceEntry host, so "
                    "requests routed here get 503 (no cluster); fix the name or define the "
                    "service",
                )
            )
            continue
        ports = ", ".join(str(p.port) for p in service.ports)
        if d.port is not None and service.port(d.port.number) is None:
            out.append(
                finding(
                    item,
                    [*loc, "port", "number"],
                    f"service {host} has no port {d.port.number} (its ports: {ports}); "
                    "requests routed here get 503",
                )
            )
        elif d.port is None and len(service.ports) > 1 and on_gateway:
            out.append(
                finding(
                    item,
                    [*loc, "host"],
                    f"service {host} has several ports ({ports}) and this VirtualService is "
                    "bound to a Gateway, which cannot tell which one to use; set "
                    "'port: {number: ...}'",
                )
            )
        if d.subset:
            out += _subset(snapshot, item, loc, host, d.subset)
    return out


def _subset(
    snapshot: MeshSnapshot, item: Loaded, loc: Loc, host: str, subset: str
) -> list[ConfigMessage]:
    rules = snapshot.host_rules(host)
    if rules is not None and rules.subset(subset) is not None:
        return []
    if rules is None:
        why = f"no DestinationRule applies to {host}"
    else:
        defined = ", ".join(s.name for s in rules.subsets) or "none"
        by = ", ".join(key(r) for r in rules.sources)
        why = f"DestinationRule {by} defines subsets: {defined}"
    return [
        finding(
            item,
            [*loc, "subset"],
            f"subset '{subset}' of {host} is not defined ({why}); requests routed here get "
            "503 (no cluster). Add the subset to a DestinationRule for the host or fix the name",
        )
    ]


def _gateways(item: Loaded, vs: VirtualService, known: set[str]) -> list[ConfigMessage]:
    ns = vs.metadata.namespace
    named: list[tuple[Loc, str]] = [
        (["spec", "gateways", i], g) for i, g in enumerate(vs.spec.gateways)
    ]
    for i, rule in enumerate(vs.spec.http):
        for j, match in enumerate(rule.match):
            named += [
                (["spec", "http", i, "match", j, "gateways", k], g)
                for k, g in enumerate(match.gateways)
            ]
    out: list[ConfigMessage] = []
    for loc, name in named:
        full = gateway_key(name, ns)
        if full == MESH_GATEWAY or full in known:
            continue
        listed = ", ".join(sorted(known)) or "none"
        out.append(
            finding(
                item,
                loc,
                f"Gateway {full} does not exist (Gateways: {listed}), so nothing is served "
                "through it; fix the name (another namespace: 'namespace/name')",
            )
        )
    return out


def _delegates(
    item: Loaded, vs: VirtualService, virtual_services: Mapping[str, Loaded[VirtualService]]
) -> list[ConfigMessage]:
    out: list[ConfigMessage] = []
    for i, rule in enumerate(vs.spec.http):
        if rule.delegate is None:
            continue
        target = f"{rule.delegate.namespace or vs.metadata.namespace}/{rule.delegate.name}"
        found = virtual_services.get(target)
        if found is None:
            text = f"VirtualService {target} does not exist"
        elif found.resource.spec.hosts:
            text = f"VirtualService {target} has 'hosts', so it is not a delegate"
        else:
            continue
        out.append(
            finding(
                item,
                ["spec", "http", i, "delegate"],
                f"{text}; this rule is dropped (requests it would match fall through to the "
                "next rules). Point it at a VirtualService without 'hosts'",
            )
        )
    return out


def _rule_host(snapshot: MeshSnapshot, item: Loaded[DestinationRule]) -> list[ConfigMessage]:
    dr = item.resource
    host = snapshot.resolve_host(dr.spec.host, dr.metadata.namespace)
    if host.startswith("*"):
        suffix = host[1:]
        if any(h.endswith(suffix) for h in snapshot.services):
            return []
    elif snapshot.service(host) is not None:
        return []
    resolved = f" (in namespace {dr.metadata.namespace}: {host})" if host != dr.spec.host else ""
    return [
        finding(
            item,
            ["spec", "host"],
            f"host '{dr.spec.host}'{resolved} is not a Service or ServiceEntry host, so this "
            "DestinationRule has no effect; fix the name or define the service",
        )
    ]
