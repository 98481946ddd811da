"""YAML text of security.istio.io resources, for tests that build a mesh from text.

Importable from every test directory. `spec` is the resource's spec as YAML: a flow
mapping (`{mtls: {mode: STRICT}}`) or block lines (`"  selector: ...\n  rules: ..."`),
indented or not. Each document starts with `---`, so documents concatenate.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

from plait.api import Loaded
from plait.api.security import Action
from plait.model.authz import PoliciesByAction


def security_doc(kind: str, name: str, spec: str, namespace: str = "default") -> str:
    body = textwrap.indent(textwrap.dedent(spec).strip("\n"), "  ")
    return f"""---
apiVersion: security.istio.io/v1
kind: {kind}
metadata: {{name: {name}, namespace: {namespace}}}
spec:
{body}
"""


def authorization_policy(name: str, spec: str, namespace: str = "default") -> str:
    return security_doc("AuthorizationPolicy", name, spec, namespace)


def peer_authentication(name: str, spec: str, namespace: str = "default") -> str:
    return security_doc("PeerAuthentication", name, spec, namespace)


def request_authentication(name: str, spec: str, namespace: str = "default") -> str:
    return security_doc("RequestAuthentication", name, spec, namespace)


def by_action(items: Sequence[Loaded]) -> PoliciesByAction:
    """Loaded AuthorizationPolicies grouped by action, as the model groups them per proxy."""
    by: dict[Action, list[Loaded]] = {a: [] for a in Action}
    for item in items:
        by[item.resource.spec.action].append(item)  # type: ignore[union-attr]
    return PoliciesByAction(
        deny=tuple(by[Action.DENY]),
        allow=tuple(by[Action.ALLOW]),
        audit=tuple(by[Action.AUDIT]),
        custom=tuple(by[Action.CUSTOM]),
    )
