"""AuthorizationPolicy sources naming identities or namespaces no workload has.

A principal is `TRUST_DOMAIN/ns/NAMESPACE/sa/SERVICE_ACCOUNT` (a SPIFFE ID without
`spiffe://`). Only exact values are checked; wildcard forms (`*`, `prefix*`, `*suffix`)
are left alone. Reported, each where it is written:

- a principal not of that form (e.g. with `spiffe://`): it can never match a peer;
- a trust domain other than the mesh's (`trustDomain` of the mesh ConfigMap). As in
  Istio (pilot/pkg/security/trustdomain), `cluster.local` always stands for the mesh's
  own trust domain, so it is never reported;
- a namespace/service account no workload in the config runs as (`principals`,
  `notPrincipals`, `serviceAccounts`, `notServiceAccounts`, and the `when` keys
  `source.principal`, `source.serviceAccount`);
- a namespace no workload runs in (`namespaces`, `notNamespaces`, `source.namespace`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from plait.analysis.report import finding
from plait.analysis.workloads import Workload
from plait.api import Loaded
from plait.api.security import AuthorizationPolicy
from plait.errors import ConfigMessage
from plait.model.meshsettings import DEFAULT_TRUST_DOMAIN
from plait.model.snapshot import MeshSnapshot

Loc = list[str | int]
_LIST_MAX = 8
_CONDITION_KINDS = {
    "source.principal": "principal",
    "source.serviceAccount": "account",
    "source.namespace": "namespace",
}


def unknown_identities(
    snapshot: MeshSnapshot, workloads: Sequence[Workload]
) -> list[ConfigMessage]:
    """Warnings for every exact principal, service account or namespace nobody has."""
    accounts = {(w.namespace, w.service_account) for w in workloads}
    namespaces = {w.namespace for w in workloads}
    out: list[ConfigMessage] = []
    for item in snapshot.authorization_policies:
        for loc, kind, value in _references(item):
            if "*" in value:
                continue
            if kind == "namespace":
                text = _namespace_problem(value, namespaces)
            elif kind == "principal":
                text = _principal_problem(value, snapshot.mesh.trust_domain, accounts)
            else:
                ns, _, sa = value.partition("/")
                text = _account_problem(ns, sa, accounts)
            if text is not None:
                out.append(finding(item, loc, text))
    return out


def _references(item: Loaded[AuthorizationPolicy]) -> Iterator[tuple[Loc, str, str]]:
    """(path, kind, value) of every identity a policy's rules name."""
    policy = item.resource
    for i, rule in enumerate(policy.spec.rules):
        for j, entry in enumerate(rule.from_):
            source = entry.source
            for field, kind, values in (
                ("principals", "principal", source.principals),
                ("notPrincipals", "principal", source.not_principals),
                ("serviceAccounts", "account", source.service_accounts),
                ("notServiceAccounts", "account", source.not_service_accounts),
                ("namespaces", "namespace", source.namespaces),
                ("notNamespaces", "namespace", source.not_namespaces),
            ):
                for k, value in enumerate(values):
                    yield ["spec", "rules", i, "from", j, "source", field, k], kind, value
        for j, condition in enumerate(rule.when):
            found = _CONDITION_KINDS.get(condition.key)
            if found is None:
                continue
            for field, values in (
                ("values", condition.values),
                ("notValues", condition.not_values),
            ):
                for k, value in enumerate(values):
                    if found == "account" and value.count("/") != 1:
                        continue  # not NAMESPACE/SA: matched as written, nothing to compare
                    yield ["spec", "rules", i, "when", j, field, k], found, value


def _known(accounts: set[tuple[str, str]]) -> str:
    listed = sorted(f"{ns}/{sa}" for ns, sa in accounts)
    more = f", ... ({len(listed)} in all)" if len(listed) > _LIST_MAX else ""
    return ", ".join(listed[:_LIST_MAX]) + more if listed else "none"


def _principal_problem(value: str, trust_domain: str, accounts: set[tuple[str, str]]) -> str | None:
    parts = value.split("/")
    if len(parts) != 5 or parts[1] != "ns" or parts[3] != "sa" or not all(parts):
        hint = " without 'spiffe://'" if value.startswith("spiffe://") else ""
        return (
            f"'{value}' is not a workload principal, so it never matches a caller; write "
            f"TRUST_DOMAIN/ns/NAMESPACE/sa/SERVICE_ACCOUNT{hint} (e.g. "
            f"{trust_domain}/ns/default/sa/orders)"
        )
    td, ns, sa = parts[0], parts[2], parts[4]
    if td not in (trust_domain, DEFAULT_TRUST_DOMAIN):
        return (
            f"trust domain '{td}' is not the mesh's ('{trust_domain}'), so no workload "
            f"certificate carries '{value}'; write {trust_domain}/ns/{ns}/sa/{sa}"
        )
    return _account_problem(ns, sa, accounts)


def _account_problem(ns: str, sa: str, accounts: set[tuple[str, str]]) -> str | None:
    if (ns, sa) in accounts:
        return None
    return (
        f"no workload in the config runs as service account '{sa}' in namespace '{ns}' "
        f"(known: {_known(accounts)}), so this never matches a caller; fix the name, or "
        "set that serviceAccountName on the calling Deployment"
    )


def _namespace_problem(value: str, namespaces: set[str]) -> str | None:
    if value in namespaces:
        return None
    known = ", ".join(sorted(namespaces)) or "none"
    return (
        f"no workload in the config runs in namespace '{value}' (namespaces with workloads: "
        f"{known}), so this never matches a caller; fix the name"
    )
