"""The PeerAuthentication mode in force for a workload (and port), and which field set it.

Istio's composition (pilot/pkg/security/authn/policy_applier.go, ComposePeerAuthentication):

- mesh level: a policy without selector (or with empty `matchLabels`) in the root
  namespace; namespace level: one without selector in the workload's namespace; workload
  level: one in the workload's namespace whose `selector.matchLabels` match its labels.
  A policy with a selector in the root namespace is ignored. Of several at one level the
  oldest wins (plait: the first by name, the snapshot's order);
- the narrowest level that sets a mode wins; UNSET inherits from the level above; nothing
  set anywhere is PERMISSIVE;
- `portLevelMtls` of the workload-level policy overrides the mode for that workload port
  (an UNSET entry inherits the workload's mode).

These are the rules of `model.peerauth` (which the translator uses, and which
tests/unit/analysis/test_analysis_security.py checks this module against); the analysis
also needs to know *which field* decided, to put its warning there, which
`model.peerauth` does not keep. Workloads without a sidecar have no mode (nothing
enforces one).
"""

from __future__ import annotations

from dataclasses import dataclass

from plait.analysis.workloads import Workload
from plait.api import Loaded
from plait.api.security import MtlsMode, PeerAuthentication
from plait.model.snapshot import MeshSnapshot

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class PeerMode:
    """An effective mode (never UNSET) and the policy field that set it (None: default)."""

    mode: MtlsMode
    item: Loaded | None = None
    loc: Loc = ()


def _pa(item: Loaded) -> PeerAuthentication:
    return item.resource  # type: ignore[return-value]


def has_selector(item: Loaded) -> bool:
    selector = _pa(item).spec.selector
    return selector is not None and bool(selector.match_labels)


def workload_policy(snapshot: MeshSnapshot, workload: Workload) -> Loaded | None:
    """The workload-level PeerAuthentication of `workload`, if any."""
    for item in snapshot.peer_authentications:
        pa = _pa(item)
        if (
            has_selector(item)
            and pa.metadata.namespace == workload.namespace
            and pa.metadata.namespace != snapshot.mesh.root_namespace
            and pa.spec.selector is not None
            and workload.proxy.labels.matches(pa.spec.selector.match_labels)
        ):
            return item
    return None


def _wide(snapshot: MeshSnapshot, namespace: str) -> Loaded | None:
    return next(
        (
            i
            for i in snapshot.peer_authentications
            if not has_selector(i) and _pa(i).metadata.namespace == namespace
        ),
        None,
    )


def _mode_of(item: Loaded | None) -> PeerMode | None:
    if item is None:
        return None
    mtls = _pa(item).spec.mtls
    if mtls is None or mtls.mode is MtlsMode.UNSET:
        return None
    return PeerMode(mtls.mode, item, ("spec", "mtls", "mode"))


def peer_mode(snapshot: MeshSnapshot, workload: Workload, port: int | None = None) -> PeerMode:
    """The mode in force for `workload` (on `port`, if given) and where it comes from."""
    chosen = PeerMode(MtlsMode.PERMISSIVE)
    levels = (
        _wide(snapshot, snapshot.mesh.root_namespace),
        _wide(snapshot, workload.namespace)
        if workload.namespace != snapshot.mesh.root_namespace
        else None,
        workload_policy(snapshot, workload),
    )
    for item in levels:
        chosen = _mode_of(item) or chosen
    if port is not None and levels[2] is not None:
        entry = _pa(levels[2]).spec.port_level_mtls.get(str(port))
        if entry is not None and entry.mode is not MtlsMode.UNSET:
            chosen = PeerMode(entry.mode, levels[2], ("spec", "portLevelMtls", str(port), "mode"))
    return chosen


def modes(snapshot: MeshSnapshot, workload: Workload) -> list[PeerMode]:
    """Every mode in force on `workload`: its own, and that of each port-level entry."""
    out = [peer_mode(snapshot, workload)]
    ports = set(workload.ports)
    own = workload_policy(snapshot, workload)
    if own is not None:
        ports |= {int(p) for p in _pa(own).spec.port_level_mtls}
    out += [peer_mode(snapshot, workload, p) for p in sorted(ports)]
    return out
