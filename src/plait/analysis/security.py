"""Checks of the security policies against the workloads (issue "Zero trust by default").

Warnings, not errors: Istio accepts all of this, but each one means a policy that does
not do what it says. Workloads are the config's Deployments and the ingress gateway
(`workloads`). The checks, each in its module:

- `principals`: principals, service accounts and namespaces no workload has, principals
  of another trust domain or not of the `TD/ns/NS/sa/SA` form;
- `selection`: AuthorizationPolicy, RequestAuthentication and PeerAuthentication that
  select no workload enforcing them;
- `plaintext`: STRICT while workloads without a sidecar exist (their plain-text calls are
  refused), DestinationRule `tls.mode: DISABLE` towards STRICT workloads, and STRICT
  ports that local mode cannot enforce (one listener for ports of mixed modes);
- `authzrules`: rules that can never match (and ALLOW policies that therefore deny
  everything), and CUSTOM policies, which plait cannot apply.
"""

from __future__ import annotations

from collections.abc import Sequence

from plait.analysis.authzrules import never_matching_rules
from plait.analysis.plaintext import (
    plaintext_to_strict,
    strict_not_enforced_locally,
    strict_without_callers,
)
from plait.analysis.principals import unknown_identities
from plait.analysis.selection import selecting_nothing
from plait.analysis.workloads import workloads_of
from plait.api import Loaded
from plait.errors import ConfigMessage
from plait.model.snapshot import MeshSnapshot


def security_problems(snapshot: MeshSnapshot, config: Sequence[Loaded]) -> list[ConfigMessage]:
    """Warnings about the snapshot's security policies; `config` supplies the Deployments."""
    if not (
        snapshot.authorization_policies
        or snapshot.request_authentications
        or snapshot.peer_authentications
    ):
        return []
    workloads = workloads_of(config, snapshot)
    return [
        *unknown_identities(snapshot, workloads),
        *selecting_nothing(snapshot, workloads),
        *strict_without_callers(snapshot, workloads),
        *plaintext_to_strict(snapshot, workloads),
        *strict_not_enforced_locally(snapshot, workloads),
        *never_matching_rules(snapshot, workloads),
    ]


__all__ = ["security_problems"]
