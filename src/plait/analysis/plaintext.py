"""STRICT mTLS where plain-text callers exist, and DestinationRules that send plain text to it.

Under STRICT a sidecar's inbound accepts only mTLS (a client certificate is required), so:

- a workload without a sidecar (`sidecar.istio.io/inject: "false"`) speaks plain text
  and its calls to a STRICT workload are refused. plait cannot tell who calls whom, so
  every PeerAuthentication field that makes some sidecar STRICT (`spec.mtls.mode`, or a
  `portLevelMtls` entry) is reported when the mesh has sidecar-less workloads, naming them;
- a DestinationRule `tls.mode: DISABLE` makes callers send plain text to the host: calls
  to a port whose workloads are STRICT fail. Reported at that `tls.mode` (top level,
  `portLevelSettings`, or a subset's), for the DestinationRules in force for the host;
- in local mode a sidecar serves all its workload ports on one inbound listener, which
  takes PERMISSIVE when `portLevelMtls` gives those ports different modes
  (`model.peerauth.inbound_mode`): a port set to STRICT then accepts plain text too.
  Reported where STRICT is set for such a port.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from plait.analysis.report import finding, where
from plait.analysis.workloads import Workload, names
from plait.api import DestinationRule, Loaded
from plait.api.destinationrule import TrafficPolicy
from plait.api.security import MtlsMode, PeerAuthentication
from plait.errors import ConfigMessage
from plait.model.peerauth import Loc as PeerLoc
from plait.model.peerauth import PeerAuthentications, inbound_mode, served_ports
from plait.model.registry import Service
from plait.model.snapshot import MeshSnapshot

Loc = list[str | int]


def strict_without_callers(
    snapshot: MeshSnapshot, workloads: Sequence[Workload]
) -> list[ConfigMessage]:
    """Warnings on every STRICT setting in force while sidecar-less workloads exist."""
    plain = [w for w in workloads if not w.sidecar]
    if not plain:
        return []
    peer_auth = PeerAuthentications(snapshot)
    strict: dict[tuple[Loaded, PeerLoc], list[Workload]] = {}
    for w in _enforcing(workloads):
        for m in peer_auth.workload(w.namespace, w.proxy.labels).every_mode():
            if m.mode is MtlsMode.STRICT and m.item is not None:
                strict.setdefault((m.item, m.loc), []).append(w)
    return [
        finding(
            item,
            loc,
            f"STRICT refuses plain text: workloads without a sidecar ({names(plain)}) "
            f"cannot call {names(targets)}{_port(loc)} (their connections are closed). Give "
            'them a sidecar (remove sidecar.istio.io/inject: "false") or use PERMISSIVE '
            "where they call",
        )
        for (item, loc), targets in strict.items()
    ]


def _port(loc: PeerLoc) -> str:
    return f" on port {loc[2]}" if len(loc) > 2 and loc[1] == "portLevelMtls" else ""


def strict_not_enforced_locally(
    snapshot: MeshSnapshot, workloads: Sequence[Workload]
) -> list[ConfigMessage]:
    """Warnings where a STRICT port shares the local inbound listener with laxer ports."""
    peer_auth = PeerAuthentications(snapshot)
    found: dict[tuple[Loaded, PeerLoc], tuple[list[Workload], list[int]]] = {}
    for w in _enforcing(workloads):
        labels = w.proxy.labels
        if inbound_mode(peer_auth, snapshot, w.namespace, labels) is not MtlsMode.PERMISSIVE:
            continue
        ports = served_ports(snapshot, w.namespace, labels)
        for port in ports:
            mode = peer_auth.workload(w.namespace, labels).decided(port)
            if mode.mode is MtlsMode.STRICT and mode.item is not None:
                entry = found.setdefault((mode.item, mode.loc), ([], ports))
                entry[0].append(w)
    return [
        finding(
            item,
            loc,
            f"in local mode one inbound listener serves ports {', '.join(map(str, ports))} "
            f"of {names(targets)}, and they ask for different modes, so plait accepts mTLS "
            f"and plain text on all of them (PERMISSIVE): STRICT{_port(loc)} is not enforced "
            "here. Give the ports one mode (on Kubernetes each port keeps its own)",
        )
        for (item, loc), (targets, ports) in found.items()
    ]


def _enforcing(workloads: Sequence[Workload]) -> list[Workload]:
    """Sidecar workloads: PeerAuthentication governs their inbound (not the gateway's)."""
    return [w for w in workloads if w.sidecar and not w.is_gateway]


def plaintext_to_strict(
    snapshot: MeshSnapshot, workloads: Sequence[Workload]
) -> list[ConfigMessage]:
    """Warnings on DestinationRule `tls.mode: DISABLE` towards STRICT workloads."""
    out: list[ConfigMessage] = []
    peer_auth = PeerAuthentications(snapshot)
    for item in snapshot.destination_rules:
        dr = item.resource
        host = snapshot.resolve_host(dr.spec.host, dr.metadata.namespace)
        service = snapshot.service(host)
        rules = snapshot.host_rules(host)
        if service is None or service.external or rules is None or item not in rules.sources:
            continue
        backends = [
            w
            for w in _enforcing(workloads)
            if w.namespace == service.namespace
            and service.selector
            and w.proxy.labels.matches(service.selector)
        ]
        for loc, policy, labels in _policies(dr):
            for tls_loc, ports in _disabled(policy, service):
                chosen = [w for w in backends if w.proxy.labels.matches(labels)]
                found = _strict(peer_auth, chosen, service, ports)
                if found:
                    out.append(_plaintext_finding(item, [*loc, *tls_loc], host, found))
    return out


def _policies(dr: DestinationRule) -> Iterator[tuple[Loc, TrafficPolicy, dict[str, str]]]:
    """(path, policy, subset labels) of the top-level and every subset's trafficPolicy."""
    if dr.spec.traffic_policy is not None:
        yield ["spec", "trafficPolicy"], dr.spec.traffic_policy, {}
    for k, subset in enumerate(dr.spec.subsets):
        if subset.traffic_policy is not None:
            yield ["spec", "subsets", k, "trafficPolicy"], subset.traffic_policy, subset.labels


def _disabled(policy: TrafficPolicy, service: Service) -> Iterator[tuple[Loc, list[int]]]:
    """(path of tls.mode, service ports it governs) for each DISABLE in `policy`."""
    overridden = {p.port.number for p in policy.port_level_settings if p.tls is not None}
    if policy.tls is not None and policy.tls.mode == "DISABLE":
        yield ["tls", "mode"], [p.port for p in service.ports if p.port not in overridden]
    for i, level in enumerate(policy.port_level_settings):
        if level.tls is not None and level.tls.mode == "DISABLE":
            yield ["portLevelSettings", i, "tls", "mode"], [level.port.number]


def _strict(
    peer_auth: PeerAuthentications, backends: list[Workload], service: Service, ports: list[int]
) -> list[tuple[int, Workload, Loaded[PeerAuthentication] | None]]:
    """(service port, workload, deciding PeerAuthentication) for each STRICT backend port."""
    out: list[tuple[int, Workload, Loaded[PeerAuthentication] | None]] = []
    for number in ports:
        port = service.port(number)
        if port is None:
            continue
        for w in backends:
            target = w.target_port(port)
            mode = peer_auth.workload(w.namespace, w.proxy.labels).decided(target)
            if mode.mode is MtlsMode.STRICT:
                out.append((number, w, mode.item))
    return out


def _plaintext_finding(
    item: Loaded,
    loc: Loc,
    host: str,
    found: list[tuple[int, Workload, Loaded[PeerAuthentication] | None]],
) -> ConfigMessage:
    ports = ", ".join(sorted({str(p) for p, _, _ in found}))
    policies = ", ".join(sorted({where(i) for _, _, i in found if i is not None}))
    return finding(
        item,
        loc,
        f"tls mode DISABLE sends plain text to {host} (port {ports}), but its workloads "
        f"{names(w for _, w, _ in found)} accept only mTLS (PeerAuthentication STRICT: "
        f"{policies}), so these calls fail. Remove this 'tls' (sidecars then use mTLS "
        "automatically) or set mode ISTIO_MUTUAL",
    )
