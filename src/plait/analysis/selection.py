"""Security policies that select no workload (istioctl analyze: IST0127 and kin).

Which workloads an AuthorizationPolicy or RequestAuthentication applies to is
`model.authz.applies_to`; a PeerAuthentication's follows the levels of `model.peerauth`.
A policy is reported when it applies to no workload that enforces it (one with a sidecar,
or the ingress gateway), naming the reason:

- its `selector` matches no workload (in its namespace; in every namespace for an
  AuthorizationPolicy/RequestAuthentication in the root namespace);
- a `targetRef` names a Service or Gateway that does not exist, or another namespace;
- a PeerAuthentication with a selector in the root namespace (Istio ignores it). A
  PeerAuthentication never selects the ingress gateway (it governs sidecars' inbound
  traffic; a gateway's TLS is set by its Gateway servers);
- it selects only workloads without a sidecar, where nothing enforces it;
- a namespace-wide policy (no selector) in a namespace where no workload runs.

A mesh-wide policy (root namespace, no selector or targetRef) is never reported.
"""

from __future__ import annotations

from collections.abc import Sequence

from plait.analysis.report import finding
from plait.analysis.workloads import Workload, names
from plait.api import Loaded, is_kind
from plait.api.security import AuthorizationPolicy, PeerAuthentication, RequestAuthentication
from plait.errors import ConfigMessage
from plait.model.authz import applies_to, target_refs
from plait.model.registry import service_hostname
from plait.model.snapshot import MeshSnapshot

Loc = list[str | int]
Policy = AuthorizationPolicy | RequestAuthentication | PeerAuthentication


def selected(snapshot: MeshSnapshot, item: Loaded, workloads: Sequence[Workload]) -> list[Workload]:
    """The workloads an AuthorizationPolicy, RequestAuthentication or PeerAuthentication
    applies to (with or without a sidecar)."""
    if is_kind(item, PeerAuthentication):
        return [w for w in workloads if _pa_applies(snapshot, item.resource, w)]
    if is_kind(item, AuthorizationPolicy) or is_kind(item, RequestAuthentication):
        return [w for w in workloads if applies_to(snapshot, item, w.proxy)]
    return []


def enforced(snapshot: MeshSnapshot, item: Loaded, workloads: Sequence[Workload]) -> list[Workload]:
    """The selected workloads that enforce the policy: those with a sidecar (and, except
    for PeerAuthentication, the ingress gateway)."""
    return [w for w in selected(snapshot, item, workloads) if w.sidecar]


def _pa_applies(snapshot: MeshSnapshot, pa: PeerAuthentication, w: Workload) -> bool:
    if w.is_gateway:
        return False
    ns = pa.metadata.namespace
    selector = pa.spec.selector
    if selector is None or not selector.match_labels:
        return ns in (w.namespace, snapshot.mesh.root_namespace)
    return ns == w.namespace != snapshot.mesh.root_namespace and w.proxy.labels.matches(
        selector.match_labels
    )


def selecting_nothing(snapshot: MeshSnapshot, workloads: Sequence[Workload]) -> list[ConfigMessage]:
    """One warning per security policy that no workload enforces."""
    out: list[ConfigMessage] = []
    items: tuple[Loaded[Policy], ...] = (
        *snapshot.authorization_policies,
        *snapshot.request_authentications,
        *snapshot.peer_authentications,
    )
    for item in items:
        found = _problem(snapshot, item, workloads)
        if found is not None:
            loc, text = found
            out.append(finding(item, loc, text))
    return out


def _problem(
    snapshot: MeshSnapshot, item: Loaded[Policy], workloads: Sequence[Workload]
) -> tuple[Loc, str] | None:
    policy = item.resource
    kind = policy.kind
    if policy.metadata.namespace == snapshot.mesh.root_namespace and not _targeted(policy):
        return None  # mesh-wide: meant for every workload, present or future
    chosen = selected(snapshot, item, workloads)
    if any(w.sidecar for w in chosen):
        return None
    if chosen:
        return (
            _whole(policy),
            f"this {kind} selects only workloads without a sidecar ({names(chosen)}; "
            'annotation sidecar.istio.io/inject: "false"), where nothing enforces it; '
            "remove the annotation or the policy",
        )
    if isinstance(policy, PeerAuthentication):
        return _peer_problem(snapshot, policy) or _selector_problem(snapshot, policy)
    return _target_problem(snapshot, policy) or _selector_problem(snapshot, policy)


def _target_problem(
    snapshot: MeshSnapshot, policy: AuthorizationPolicy | RequestAuthentication
) -> tuple[Loc, str] | None:
    refs = target_refs(policy.spec)
    if not refs:
        return None
    ns = policy.metadata.namespace
    kind = policy.kind
    for i, ref in enumerate(refs):
        loc: Loc = ["spec", "targetRefs", i] if policy.spec.target_refs else ["spec", "targetRef"]
        if ref.namespace and ref.namespace != ns:
            return (
                [*loc, "namespace"],
                f"targetRef namespace '{ref.namespace}' is not the policy's ({ns}); Istio "
                "ignores such references, so this policy applies to nothing. Put the policy "
                "in the target's namespace and drop 'namespace'",
            )
        exists = (
            snapshot.service(service_hostname(ref.name, ns)) is not None
            if ref.kind == "Service"
            else any(
                g.resource.metadata.namespace == ns and g.resource.metadata.name == ref.name
                for g in snapshot.gateways
            )
        )
        if not exists:
            return (
                [*loc, "name"],
                f"{ref.kind} {ns}/{ref.name} does not exist, so this {kind} applies to "
                f"nothing; fix the name (the {ref.kind} must be in the policy's namespace)",
            )
    return (
        _whole(policy),
        f"no workload runs behind the target of this {kind}, so it applies to nothing; "
        "check the targetRef (a Service needs a selector matching a Deployment's pod labels)",
    )


def _peer_problem(snapshot: MeshSnapshot, policy: PeerAuthentication) -> tuple[Loc, str] | None:
    root = snapshot.mesh.root_namespace
    if _labels(policy) and policy.metadata.namespace == root:
        return (
            ["spec", "selector"],
            f"a PeerAuthentication with a selector in the root namespace ({root}) is "
            "ignored (Istio); put it in the namespace of the workloads it is for",
        )
    return None


def _selector_problem(snapshot: MeshSnapshot, policy: Policy) -> tuple[Loc, str] | None:
    ns = policy.metadata.namespace
    labels = _labels(policy)
    if labels:
        everywhere = ns == snapshot.mesh.root_namespace and not isinstance(
            policy, PeerAuthentication
        )
        scope = "any namespace" if everywhere else f"namespace {ns}"
        shown = ", ".join(f"{k}={v}" for k, v in sorted(labels.items()))
        return (
            ["spec", "selector", "matchLabels"],
            f"no workload in {scope} has the labels {shown}, so this {policy.kind} applies "
            "to nothing; fix the labels (they must match a Deployment's pod template labels)",
        )
    return (
        _whole(policy),
        f"no workload runs in namespace {ns}, so this namespace-wide {policy.kind} applies "
        "to nothing; put it in the namespace of the workloads it is for",
    )


def _targeted(policy: Policy) -> bool:
    """The policy picks workloads (selector labels or targetRefs), not a whole namespace."""
    if _labels(policy):
        return True
    return not isinstance(policy, PeerAuthentication) and bool(target_refs(policy.spec))


def _labels(policy: Policy) -> dict[str, str]:
    selector = policy.spec.selector
    return dict(selector.match_labels) if selector is not None else {}


def _whole(policy: Policy) -> Loc:
    """Where a message about the whole policy goes: its selector, else its namespace."""
    if policy.spec.selector is not None:
        return ["spec", "selector"]
    if not isinstance(policy, PeerAuthentication) and target_refs(policy.spec):
        return ["spec", "targetRefs" if policy.spec.target_refs else "targetRef"]
    return ["metadata", "namespace"]
