"""Which AuthorizationPolicies and RequestAuthentications apply to a proxy.

Istio's selection (pilot/pkg/model/authorization.go, policyattachment.go):

- a policy in the mesh root namespace without selector applies to every workload; with a
  `selector`, to the workloads whose labels it matches, in every namespace;
- a policy in another namespace applies to that namespace's workloads: all of them
  without selector, those its `selector.matchLabels` match otherwise;
- `targetRef(s)` kind Gateway N (in the policy's namespace) attaches to the gateway
  proxies of N: those labelled `gateway.networking.k8s.io/gateway-name: N` in the
  policy's namespace (Istio), and, in local mode, plait's one ingress gateway whenever a
  Gateway resource N exists in the policy's namespace (that gateway serves them all);
- `targetRef(s)` kind Service N attaches to the workloads Service N (in the policy's
  namespace) selects. Istio applies Service targets only on waypoints (ambient) and
  ignores them on sidecars; plait, which has no waypoints, applies them to the Service's
  sidecars instead, which is what such a policy asks for.

A `targetRef` naming another namespace never matches, as in Istio. Order is stable: the
snapshot's (namespace, name) order (Istio orders by creation time).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from plait.api import Loaded
from plait.api.common import WorkloadSelector
from plait.api.security import (
    Action,
    AuthorizationPolicy,
    PolicyTargetReference,
    RequestAuthentication,
)
from plait.api.telemetry import Telemetry
from plait.model.proxy import Proxy, ProxyKind
from plait.model.registry import service_hostname
from plait.model.snapshot import MeshSnapshot

GATEWAY_NAME_LABEL = "gateway.networking.k8s.io/gateway-name"


class _Targetable(Protocol):
    @property
    def selector(self) -> WorkloadSelector | None: ...
    @property
    def target_ref(self) -> PolicyTargetReference | None: ...
    @property
    def target_refs(self) -> tuple[PolicyTargetReference, ...]: ...


@dataclass(frozen=True)
class PoliciesByAction:
    """The AuthorizationPolicies applying to one proxy, by action, each in stable order."""

    deny: tuple[Loaded[AuthorizationPolicy], ...] = ()
    allow: tuple[Loaded[AuthorizationPolicy], ...] = ()
    audit: tuple[Loaded[AuthorizationPolicy], ...] = ()
    custom: tuple[Loaded[AuthorizationPolicy], ...] = ()

    def of(self, action: Action) -> tuple[Loaded[AuthorizationPolicy], ...]:
        return {
            Action.DENY: self.deny,
            Action.ALLOW: self.allow,
            Action.AUDIT: self.audit,
            Action.CUSTOM: self.custom,
        }[action]

    @property
    def empty(self) -> bool:
        return not (self.deny or self.allow or self.audit or self.custom)


Policy = AuthorizationPolicy | RequestAuthentication | Telemetry


def target_refs(spec: _Targetable) -> tuple[PolicyTargetReference, ...]:
    """`targetRefs`, or the legacy single `targetRef`."""
    if spec.target_refs:
        return spec.target_refs
    return (spec.target_ref,) if spec.target_ref is not None else ()


def applies_to(snapshot: MeshSnapshot, item: Loaded[Policy], proxy: Proxy) -> bool:
    """True when the AuthorizationPolicy, RequestAuthentication or Telemetry `item` applies
    to proxy."""
    resource = item.resource
    namespace = resource.metadata.namespace
    spec = resource.spec
    refs = target_refs(spec)
    if refs:
        return any(_ref_matches(snapshot, namespace, ref, proxy) for ref in refs)
    if namespace != proxy.namespace and namespace != snapshot.mesh.root_namespace:
        return False
    selector = spec.selector
    return selector is None or proxy.labels.matches(selector.match_labels)


def _ref_matches(
    snapshot: MeshSnapshot, namespace: str, ref: PolicyTargetReference, proxy: Proxy
) -> bool:
    if ref.namespace and ref.namespace != namespace:
        return False  # cross-namespace references never match (Istio)
    if ref.kind == "Service":
        service = snapshot.services.get(service_hostname(ref.name, namespace))
        return (
            service is not None
            and bool(service.selector)
            and proxy.namespace == namespace
            and proxy.labels.matches(service.selector)
        )
    if proxy.kind is not ProxyKind.GATEWAY:
        return False
    if proxy.namespace == namespace and proxy.labels.get(GATEWAY_NAME_LABEL) == ref.name:
        return True
    return any(
        g.resource.metadata.namespace == namespace and g.resource.metadata.name == ref.name
        for g in snapshot.gateways
    )


def authorization_policies_for(snapshot: MeshSnapshot, proxy: Proxy) -> PoliciesByAction:
    """The AuthorizationPolicies that apply to proxy, grouped by action."""
    groups: dict[Action, list[Loaded[AuthorizationPolicy]]] = {a: [] for a in Action}
    for item in snapshot.policies.authorization.candidates(_homes(snapshot, proxy)):
        if applies_to(snapshot, item, proxy):
            groups[item.resource.spec.action].append(item)
    return PoliciesByAction(
        deny=tuple(groups[Action.DENY]),
        allow=tuple(groups[Action.ALLOW]),
        audit=tuple(groups[Action.AUDIT]),
        custom=tuple(groups[Action.CUSTOM]),
    )


def request_authentications_for(
    snapshot: MeshSnapshot, proxy: Proxy
) -> tuple[Loaded[RequestAuthentication], ...]:
    """The RequestAuthentications that apply to proxy, in stable order."""
    found = snapshot.policies.request_authentication.candidates(_homes(snapshot, proxy))
    return tuple(i for i in found if applies_to(snapshot, i, proxy))


def _homes(snapshot: MeshSnapshot, proxy: Proxy) -> tuple[str, str]:
    """The namespaces whose selector policies can apply to proxy: its own and the root."""
    return (proxy.namespace, snapshot.mesh.root_namespace)


def is_targeted(item: Loaded[Policy]) -> bool:
    """True when the policy picks workloads (selector with labels, or targetRef(s))."""
    spec = item.resource.spec
    selector = spec.selector
    return bool(target_refs(spec)) or (selector is not None and bool(selector.match_labels))


def selects_nothing(snapshot: MeshSnapshot, item: Loaded[Policy], proxies: Iterable[Proxy]) -> bool:
    """True when a selector/targetRef policy applies to none of `proxies`.

    Mesh- and namespace-wide policies (no selector, no targetRef) are never reported, as
    in Istio's analyzer: they are meant to cover workloads that may come later.
    """
    if not is_targeted(item):
        return False
    return not any(applies_to(snapshot, item, p) for p in proxies)


__all__ = [
    "GATEWAY_NAME_LABEL",
    "PoliciesByAction",
    "applies_to",
    "authorization_policies_for",
    "is_targeted",
    "request_authentications_for",
    "selects_nothing",
    "target_refs",
]
