"""PeerAuthentication: the effective mTLS mode of a workload and of each of its ports.

Istio's rules (pilot/pkg/security/authn `ComposePeerAuthentication`,
pilot/pkg/model/authentication.go), for a workload (namespace, labels):

- **mesh level**: a policy without selector (or with empty `matchLabels`) in the root
  namespace (`MeshSettings.root_namespace`, `istio-system` by default);
- **namespace level**: a policy without selector in the workload's namespace (for a
  workload in the root namespace this is the mesh-level policy);
- **workload level**: a policy in the workload's namespace whose `selector.matchLabels`
  are all among the workload's labels. Istio ignores selector policies in the root
  namespace (they are neither mesh-wide nor workload-level), and so does plait;
- the narrowest level that sets a mode wins; `UNSET` (or no `mtls`) inherits the next
  level up; with nothing set the mode is PERMISSIVE;
- `portLevelMtls` of the workload-level policy overrides the mode for that workload
  port; an `UNSET` port entry takes the workload's mode.

Where a level has several policies, Istio takes the oldest. plait has no creation time,
so it takes the first by (namespace, name), the order `MeshSnapshot` keeps them in.

A *workload port* is the port the app listens on as Kubernetes sees it: a Service port's
numeric `targetPort`, else the Service port itself (`workload_port`). Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from plait.api.security import MtlsMode, PeerAuthentication
from plait.model.labels import Labels
from plait.model.registry import ServicePort
from plait.model.snapshot import MeshSnapshot

DEFAULT_MODE = MtlsMode.PERMISSIVE


def workload_port(port: ServicePort) -> int:
    """The `portLevelMtls` key a Service port reaches: its numeric targetPort, or itself."""
    if isinstance(port.target_port, int) and port.target_port:
        return port.target_port
    return port.port


@dataclass(frozen=True)
class WorkloadMtls:
    """The composed policy of one workload: its mode, and per-port overrides."""

    mode: MtlsMode = DEFAULT_MODE
    ports: Mapping[int, MtlsMode] = field(default_factory=dict)

    def for_port(self, port: int) -> MtlsMode:
        return self.ports.get(port, self.mode)


def _selector(pa: PeerAuthentication) -> dict[str, str]:
    selector = pa.spec.selector
    return dict(selector.match_labels) if selector is not None else {}


def _mode(pa: PeerAuthentication | None) -> MtlsMode:
    if pa is None or pa.spec.mtls is None:
        return MtlsMode.UNSET
    return pa.spec.mtls.mode


class PeerAuthentications:
    """The PeerAuthentications of one snapshot, indexed; `workload(...)` is memoised per
    (namespace, labels) since every replica of a Deployment shares them."""

    def __init__(self, snapshot: MeshSnapshot) -> None:
        self.root_namespace = snapshot.mesh.root_namespace
        self._namespace_wide: dict[str, PeerAuthentication] = {}
        self._selecting: dict[str, list[PeerAuthentication]] = {}
        for item in snapshot.peer_authentications:  # sorted by (namespace, name)
            pa: PeerAuthentication = item.resource  # type: ignore[assignment]
            ns = pa.metadata.namespace
            if not _selector(pa):
                self._namespace_wide.setdefault(ns, pa)  # the first one wins
            elif ns != self.root_namespace:
                self._selecting.setdefault(ns, []).append(pa)
        self._memo: dict[tuple[str, Labels], WorkloadMtls] = {}

    def workload(self, namespace: str, labels: Labels) -> WorkloadMtls:
        """The effective policy of a workload (see the module docstring)."""
        key = (namespace, labels)
        found = self._memo.get(key)
        if found is None:
            found = self._memo[key] = self._compose(namespace, labels)
        return found

    def mode(self, namespace: str, labels: Labels, port: int) -> MtlsMode:
        """The mode of one workload port: never UNSET."""
        return self.workload(namespace, labels).for_port(port)

    def _compose(self, namespace: str, labels: Labels) -> WorkloadMtls:
        mode = DEFAULT_MODE
        levels = [self._namespace_wide.get(self.root_namespace)]
        if namespace != self.root_namespace:
            levels.append(self._namespace_wide.get(namespace))
        selected = next(
            (pa for pa in self._selecting.get(namespace, []) if labels.matches(_selector(pa))),
            None,
        )
        levels.append(selected)
        for pa in levels:
            if _mode(pa) is not MtlsMode.UNSET:
                mode = _mode(pa)
        ports: dict[int, MtlsMode] = {}
        if selected is not None:
            for port, port_mode in selected.spec.port_modes().items():
                ports[port] = mode if port_mode is MtlsMode.UNSET else port_mode
        return WorkloadMtls(mode, ports)


def served_ports(snapshot: MeshSnapshot, namespace: str, labels: Labels) -> list[int]:
    """The workload ports that the Services selecting this workload reach, sorted."""
    return sorted(
        {
            workload_port(port)
            for service in snapshot.services.values()
            if service.namespace == namespace
            and service.selector
            and not service.external
            and labels.matches(service.selector)
            for port in service.ports
        }
    )


def listener_mode(modes: Iterable[MtlsMode]) -> MtlsMode:
    """The mode of one socket that serves several workload ports: it accepts whatever any
    of them accepts (mTLS if one is STRICT or PERMISSIVE, plain text if one is PERMISSIVE
    or DISABLE). With one mode, that mode; with none, the default."""
    found = set(modes)
    if not found:
        return DEFAULT_MODE
    if len(found) == 1:
        return found.pop()
    return MtlsMode.PERMISSIVE


def inbound_mode(
    policies: PeerAuthentications, snapshot: MeshSnapshot, namespace: str, labels: Labels
) -> MtlsMode:
    """The mode of a local-mode sidecar's inbound listener.

    Under Kubernetes each workload port has its own inbound filter chains, so each port
    gets its own mode. In local mode a replica has one app port (`$PORT`) behind one
    inbound listener, and every port of every Service that selects it arrives there: the
    listener cannot tell them apart, so when `portLevelMtls` gives them different modes
    it takes `listener_mode` of them all (mixed modes end up PERMISSIVE, so each port's
    callers keep working; a port that asked for STRICT then also accepts plain text —
    `plait analyze` should say so). A workload no Service selects takes its workload mode.
    """
    policy = policies.workload(namespace, labels)
    ports = served_ports(snapshot, namespace, labels)
    if not ports:
        return policy.mode
    return listener_mode(policy.for_port(p) for p in ports)
