"""The indexes of a `MeshSnapshot`: built once in `build_snapshot`, read by translators.

Each index is a small frozen value over the snapshot's typed collections, so a builder
asks "which VirtualServices are bound to gateway G" or "which policies can apply in
namespace N" without scanning every resource for every proxy. Entries keep the
snapshot's (namespace, name) order, which Istio's creation-time order stands in for.
Indexes hold no caches, locks or metrics (Istio's PushContext grew all three); a memo
that depends on a proxy (`PeerAuthentications.workload`) lives with the translator.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Generic

from typing_extensions import TypeVar

from plait.api import Loaded, VirtualService
from plait.api.common import WorkloadSelector
from plait.api.kinds import Resource
from plait.api.sidecar import Sidecar
from plait.model.labels import Labels
from plait.model.registry import Service

MESH_GATEWAY = "mesh"

P = TypeVar("P", bound=Resource, default=Resource)


def gateway_key(name: str, namespace: str) -> str:
    """Istio's short gateway names: `gw` in namespace ns is `ns/gw`; `mesh` stays `mesh`."""
    return name if "/" in name or name == MESH_GATEWAY else f"{namespace}/{name}"


def gateways_of(vs: VirtualService) -> list[str]:
    """The gateways a VirtualService is bound to, as full keys (`mesh` when none is named)."""
    ns = vs.metadata.namespace
    return [gateway_key(g, ns) for g in (vs.spec.gateways or [MESH_GATEWAY])]


@dataclass(frozen=True)
class VirtualServiceIndex:
    """VirtualServices by bound gateway, by the host they answer for `mesh`, and by name.

    `by_gateway` holds positions in `MeshSnapshot.virtual_services` (gateway tables key
    their memo by position); `mesh_by_host` maps a resolved hostname to the VirtualService
    bound to `mesh` that answers for it (the first by namespace/name wins, as in Istio).
    """

    by_gateway: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    mesh_by_host: Mapping[str, Loaded[VirtualService]] = field(default_factory=dict)
    by_name: Mapping[tuple[str, str], Loaded[VirtualService]] = field(default_factory=dict)

    @staticmethod
    def build(
        items: Sequence[Loaded[VirtualService]],
        hosts: Callable[[VirtualService], Iterable[str]],
    ) -> VirtualServiceIndex:
        """`hosts(vs)`: the resolved hostnames a VirtualService applies to."""
        by_gateway: dict[str, list[int]] = {}
        mesh_by_host: dict[str, Loaded[VirtualService]] = {}
        by_name: dict[tuple[str, str], Loaded[VirtualService]] = {}
        for position, item in enumerate(items):
            vs = item.resource
            by_name[(vs.metadata.namespace, vs.metadata.name)] = item
            bound = dict.fromkeys(gateways_of(vs))
            for gateway in bound:
                by_gateway.setdefault(gateway, []).append(position)
            if MESH_GATEWAY in bound:
                for host in hosts(vs):
                    mesh_by_host.setdefault(host, item)
        return VirtualServiceIndex(
            {g: tuple(p) for g, p in by_gateway.items()}, mesh_by_host, by_name
        )

    def bound_to(self, gateway: str) -> tuple[int, ...]:
        return self.by_gateway.get(gateway, ())


@dataclass(frozen=True)
class ServiceSelectorIndex:
    """Mesh Services (with a selector, not external) by one pair of their selector, so
    "which Services select this workload" looks at a few candidates, not every Service:
    a Service that selects a workload has each of its pairs, its first one included, among
    the workload's labels."""

    by_pair: Mapping[tuple[str, str, str], tuple[Service, ...]] = field(default_factory=dict)

    @staticmethod
    def build(services: Iterable[Service]) -> ServiceSelectorIndex:
        by_pair: dict[tuple[str, str, str], list[Service]] = {}
        for service in services:
            if service.selector and not service.external:
                key, value = service.selector.items_[0]
                by_pair.setdefault((service.namespace, key, value), []).append(service)
        return ServiceSelectorIndex({k: tuple(v) for k, v in by_pair.items()})

    def selecting(self, namespace: str, labels: Labels) -> list[Service]:
        """The Services in `namespace` whose selector the workload's `labels` satisfy."""
        return [
            service
            for pair in labels.items_
            for service in self.by_pair.get((namespace, *pair), ())
            if labels.matches(service.selector)
        ]


@dataclass(frozen=True)
class SidecarIndex:
    """Sidecars by namespace: those with a `workloadSelector`, by one pair of their
    selector (each entry: snapshot position, Sidecar, selector labels), and those without,
    each in snapshot (namespace, name) order; `for_workload` applies Istio's precedence
    (see `model.scope`) looking at the few Sidecars that may select the workload."""

    selecting: Mapping[tuple[str, str, str], tuple[tuple[int, Loaded[Sidecar], Labels], ...]] = (
        field(default_factory=dict)
    )
    wide: Mapping[str, tuple[Loaded[Sidecar], ...]] = field(default_factory=dict)

    @staticmethod
    def build(items: Iterable[Loaded[Sidecar]]) -> SidecarIndex:
        selecting: dict[tuple[str, str, str], list[tuple[int, Loaded[Sidecar], Labels]]] = {}
        wide: dict[str, list[Loaded[Sidecar]]] = {}
        for position, item in enumerate(items):
            ns = item.resource.metadata.namespace
            selector = item.resource.spec.workload_selector
            if selector is not None and selector.labels:
                labels = Labels.of(selector.labels)
                key, value = labels.items_[0]
                selecting.setdefault((ns, key, value), []).append((position, item, labels))
            else:
                wide.setdefault(ns, []).append(item)
        return SidecarIndex(
            {k: tuple(v) for k, v in selecting.items()}, {ns: tuple(v) for ns, v in wide.items()}
        )

    def __bool__(self) -> bool:
        return bool(self.selecting or self.wide)

    def for_workload(self, namespace: str, labels: Labels, root: str) -> Loaded[Sidecar] | None:
        """The Sidecar in force: one in the workload's namespace that selects it, else that
        namespace's Sidecar without selector, else the root namespace's (the mesh default);
        the first by name among several of one rank."""
        selecting = [
            entry
            for pair in labels.items_
            for entry in self.selecting.get((namespace, *pair), ())
            if labels.matches(entry[2])
        ]
        if selecting:
            return min(selecting, key=lambda entry: entry[0])[1]
        for ns in (namespace, root):
            found = self.wide.get(ns, ())
            if found:
                return found[0]
        return None


@dataclass(frozen=True)
class PolicyIndex(Generic[P]):
    """Policies of one kind by namespace, split by how they select workloads.

    `wide[ns]`: no selector (or empty `matchLabels`): the whole namespace, or the mesh in
    the root namespace; `selecting[ns]`: a selector with labels; `targeted`: `targetRef(s)`
    (which reach across the namespace split, so every proxy considers them). Each entry
    is (position in the snapshot's collection, item), so merged lists keep that order.
    """

    wide: Mapping[str, tuple[tuple[int, Loaded[P]], ...]] = field(default_factory=dict)
    selecting: Mapping[str, tuple[tuple[int, Loaded[P]], ...]] = field(default_factory=dict)
    targeted: tuple[tuple[int, Loaded[P]], ...] = ()

    @staticmethod
    def build(
        items: Sequence[Loaded[P]],
        selector: Callable[[P], WorkloadSelector | None],
        has_targets: Callable[[P], bool] = lambda _: False,
    ) -> PolicyIndex[P]:
        wide: dict[str, list[tuple[int, Loaded[P]]]] = {}
        selecting: dict[str, list[tuple[int, Loaded[P]]]] = {}
        targeted: list[tuple[int, Loaded[P]]] = []
        for position, item in enumerate(items):
            resource = item.resource
            chosen = selector(resource)
            if has_targets(resource):
                targeted.append((position, item))
            elif chosen is not None and chosen.match_labels:
                selecting.setdefault(resource.metadata.namespace, []).append((position, item))
            else:
                wide.setdefault(resource.metadata.namespace, []).append((position, item))
        return PolicyIndex(
            {ns: tuple(v) for ns, v in wide.items()},
            {ns: tuple(v) for ns, v in selecting.items()},
            tuple(targeted),
        )

    def candidates(self, namespaces: Iterable[str]) -> list[Loaded[P]]:
        """Every policy that may apply to a workload whose policies live in `namespaces`
        (its own and the root namespace), plus the targeted ones, in snapshot order."""
        runs: list[Iterable[tuple[int, Loaded[P]]]] = [self.targeted]
        for ns in dict.fromkeys(namespaces):
            runs += [self.wide.get(ns, ()), self.selecting.get(ns, ())]
        return [item for _, item in heapq.merge(*runs, key=lambda pair: pair[0])]


__all__ = [
    "MESH_GATEWAY",
    "PolicyIndex",
    "ServiceSelectorIndex",
    "SidecarIndex",
    "VirtualServiceIndex",
    "gateway_key",
    "gateways_of",
]
