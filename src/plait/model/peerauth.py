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

Each mode comes with the policy field that decided it (`PeerMode`): the translator needs
only the mode, `plait analyze` puts its warnings on that field.

A *workload port* is the port the app listens on as Kubernetes sees it: a Service port's
numeric `targetPort`, else the Service port itself (`workload_port`). Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from plait.api import Loaded
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


Loc = tuple[str | int, ...]
_MODE_LOC: Loc = ("spec", "mtls", "mode")


@dataclass(frozen=True)
class PeerMode:
    """A mode in force (never UNSET) and the PeerAuthentication field that set it, for
    `plait analyze` to put its warnings there (`item` None: nothing set it, the default)."""

    mode: MtlsMode = DEFAULT_MODE
    item: Loaded[PeerAuthentication] | None = None
    loc: Loc = ()


@dataclass(frozen=True)
class WorkloadMtls:
    """The composed policy of one workload: its mode, and per-port overrides."""

    own: PeerMode = PeerMode()
    port_modes: Mapping[int, PeerMode] = field(default_factory=dict)

    @property
    def mode(self) -> MtlsMode:
        return self.own.mode

    @property
    def ports(self) -> dict[int, MtlsMode]:
        return {port: decided.mode for port, decided in self.port_modes.items()}

    def decided(self, port: int | None) -> PeerMode:
        """The mode of `port` (None: of the workload) and what set it."""
        return self.own if port is None else self.port_modes.get(port, self.own)

    def for_port(self, port: int) -> MtlsMode:
        return self.decided(port).mode

    def every_mode(self) -> tuple[PeerMode, ...]:
        """The workload's own mode, then that of each `portLevelMtls` entry."""
        return (self.own, *self.port_modes.values())


def _selector(item: Loaded[PeerAuthentication]) -> dict[str, str]:
    selector = item.resource.spec.selector
    return dict(selector.match_labels) if selector is not None else {}


def _decided(item: Loaded[PeerAuthentication] | None) -> PeerMode | None:
    """The mode `item` sets for its whole workload; None where it leaves it UNSET."""
    mtls = item.resource.spec.mtls if item is not None else None
    if mtls is None or mtls.mode is MtlsMode.UNSET:
        return None
    return PeerMode(mtls.mode, item, _MODE_LOC)


class PeerAuthentications:
    """The PeerAuthentications of one snapshot (read through its `policies` index);
    `workload(...)` is memoised per (namespace, labels) since every replica of a
    Deployment shares them."""

    def __init__(self, snapshot: MeshSnapshot) -> None:
        self.root_namespace = snapshot.mesh.root_namespace
        self._index = snapshot.policies.peer_authentication
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

    def _first_wide(self, namespace: str) -> Loaded[PeerAuthentication] | None:
        """The namespace-wide policy in force: the first by name, as Istio the oldest."""
        wide = self._index.wide.get(namespace, ())
        return wide[0][1] if wide else None

    def _compose(self, namespace: str, labels: Labels) -> WorkloadMtls:
        own = PeerMode()
        levels = [self._first_wide(self.root_namespace)]
        if namespace != self.root_namespace:
            levels.append(self._first_wide(namespace))
        selecting = (
            self._index.selecting.get(namespace, ()) if namespace != self.root_namespace else ()
        )
        selected = next((i for _, i in selecting if labels.matches(_selector(i))), None)
        levels.append(selected)
        for item in levels:
            own = _decided(item) or own
        ports: dict[int, PeerMode] = {}
        if selected is not None:
            for key, entry in selected.resource.spec.port_level_mtls.items():
                if entry.mode is MtlsMode.UNSET:
                    ports[int(key)] = own
                else:
                    loc = ("spec", "portLevelMtls", key, "mode")
                    ports[int(key)] = PeerMode(entry.mode, selected, loc)
        return WorkloadMtls(own, ports)


def served_ports(snapshot: MeshSnapshot, namespace: str, labels: Labels) -> list[int]:
    """The workload ports that the Services selecting this workload reach, sorted."""
    selecting = snapshot.service_selectors.selecting(namespace, labels)
    return sorted({workload_port(port) for service in selecting for port in service.ports})


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
