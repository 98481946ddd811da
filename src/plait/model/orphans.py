"""VirtualServices without `hosts` that nothing delegates to: plait's documented extension.

Istio treats a VirtualService without hosts as a delegate and ignores it unless another
VirtualService delegates to it. Guides (including the one plait was founded on) show
such hostless examples as if they applied to their destination; plait applies an orphan
to the hosts of its route destinations, with a warning saying so and what Istio does.
"""

from __future__ import annotations

from collections.abc import Sequence

from plait.api import Loaded, VirtualService
from plait.errors import ConfigMessage

Key = tuple[str, str]  # (namespace, name)


def orphan_hosts(
    items: Sequence[Loaded[VirtualService]],
) -> tuple[dict[Key, tuple[str, ...]], list[ConfigMessage]]:
    """(namespace, name) → the hosts an orphan VirtualService applies to, and warnings."""
    delegated: set[Key] = set()
    for item in items:
        vs = item.resource
        for rule in vs.spec.http:
            if rule.delegate is not None:
                ns = rule.delegate.namespace or vs.metadata.namespace
                delegated.add((ns, rule.delegate.name))
    out: dict[Key, tuple[str, ...]] = {}
    messages: list[ConfigMessage] = []
    for item in items:
        vs = item.resource
        key = (vs.metadata.namespace, vs.metadata.name)
        if vs.spec.hosts or key in delegated:
            continue
        hosts = tuple(
            dict.fromkeys(d.destination.host for rule in vs.spec.http for d in rule.route)
        )
        if not hosts:
            continue
        out[key] = hosts
        messages.append(
            item.message(
                "spec.hosts",
                "no 'hosts' and no VirtualService delegates to it: Istio would ignore it; "
                f"plait applies it to its destination host(s) {', '.join(hosts)}. "
                "Set 'hosts' to say so explicitly",
            )
        )
    return out, messages
