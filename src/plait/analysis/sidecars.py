"""Sidecar resources that do not do what they seem to (model.scope applies them).

- Several Sidecars without `workloadSelector` in one namespace (Istio: undefined; plait
  applies the first by name), and several that select the same labels: the later ones
  are ignored for what the first covers.
- An egress host naming one exact host that no service, ServiceEntry or VirtualService
  of the mesh declares (in the namespace the host names): it imports nothing, which is
  usually a typo in the namespace or the name.
- A `workloadSelector` that selects no workload of its namespace (`selecting_nothing`,
  when the Deployments are known).
"""

from __future__ import annotations

from collections.abc import Sequence

from plait.analysis.report import finding, where
from plait.analysis.workloads import Workload
from plait.api import Loaded
from plait.api.sidecar import ANY_NAMESPACE, NO_NAMESPACE, OWN_NAMESPACE, Sidecar
from plait.errors import ConfigMessage
from plait.model.labels import Labels
from plait.model.snapshot import MeshSnapshot


def sidecar_problems(snapshot: MeshSnapshot) -> list[ConfigMessage]:
    """Warnings about shadowed Sidecars and egress hosts that import nothing."""
    out: list[ConfigMessage] = []
    first: dict[tuple[str, tuple[tuple[str, str], ...]], Loaded[Sidecar]] = {}
    for item in snapshot.sidecars:
        spec = item.resource.spec
        labels = (
            tuple(sorted(spec.workload_selector.labels.items())) if spec.workload_selector else ()
        )
        winner = first.setdefault((item.resource.metadata.namespace, labels), item)
        if winner is not item:
            what = (
                "without 'workloadSelector'" if not labels else "with the same 'workloadSelector'"
            )
            out.append(
                finding(
                    item,
                    ["metadata", "name"],
                    f"Sidecar {where(winner)} is also {what} in this namespace and comes "
                    "first by name, so this one is ignored (Istio leaves the choice "
                    "undefined); merge them into one Sidecar",
                )
            )
        out += _dead_hosts(snapshot, item)
    return out


def _declared(snapshot: MeshSnapshot) -> set[tuple[str, str]]:
    """(namespace, host) of every service and of every VirtualService host."""
    found = {(s.namespace, h) for h, s in snapshot.services.items()}
    for vs in (i.resource for i in snapshot.virtual_services):
        found |= {(vs.metadata.namespace, h) for h in snapshot.vs_hosts(vs)}
    return found


def _dead_hosts(snapshot: MeshSnapshot, item: Loaded[Sidecar]) -> list[ConfigMessage]:
    out: list[ConfigMessage] = []
    declared: set[tuple[str, str]] | None = None
    for i, listener in enumerate(item.resource.spec.egress):
        for j, text in enumerate(listener.hosts):
            namespace, _, name = text.partition("/")
            if "*" in name or namespace in (NO_NAMESPACE, OWN_NAMESPACE):
                continue  # '.' depends on the proxy (the root namespace's default)
            declared = _declared(snapshot) if declared is None else declared
            if any(h == name and namespace in (ANY_NAMESPACE, ns) for ns, h in declared):
                continue
            out.append(
                finding(
                    item,
                    ["spec", "egress", i, "hosts", j],
                    f"'{text}' imports nothing: no service, ServiceEntry or VirtualService "
                    f"declares host '{name}'"
                    + ("" if namespace == ANY_NAMESPACE else f" in namespace {namespace}")
                    + "; write the host's full name (e.g. "
                    "'ns/reviews.ns.svc.cluster.local') and the namespace that declares it",
                )
            )
    return out


def selecting_nothing(snapshot: MeshSnapshot, workloads: Sequence[Workload]) -> list[ConfigMessage]:
    """A warning per Sidecar whose `workloadSelector` selects no workload with a sidecar in
    its namespace: it applies to nothing."""
    by_pair: dict[tuple[str, str, str], list[Workload]] = {}  # not Sidecars × workloads
    for w in workloads:
        if w.sidecar and not w.is_gateway:
            for pair in w.proxy.labels.items_:
                by_pair.setdefault((w.namespace, *pair), []).append(w)
    out: list[ConfigMessage] = []
    for item in snapshot.sidecars:
        sidecar = item.resource
        selector = sidecar.spec.workload_selector
        if selector is None or not selector.labels:
            continue
        ns, labels = sidecar.metadata.namespace, Labels.of(selector.labels)
        key, value = labels.items_[0]  # a workload it selects has this pair
        if any(w.proxy.labels.matches(labels) for w in by_pair.get((ns, key, value), ())):
            continue
        out.append(
            finding(
                item,
                ["spec", "workloadSelector", "labels"],
                f"no workload with a sidecar in namespace {ns} has these labels, so this "
                "Sidecar applies to nothing (a Sidecar selects workloads of its own "
                "namespace only)",
            )
        )
    return out
