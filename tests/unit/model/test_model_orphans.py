"""Hostless VirtualServices: a delegate stays a delegate; an orphan applies to its destinations."""

from __future__ import annotations

from plait.api import load_text
from plait.model.orphans import orphan_hosts

VS = """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: {name}}}
spec:
{spec}
"""


def loaded(*docs: str):  # type: ignore[no-untyped-def]
    result = load_text("\n---\n".join(docs), "vs.yaml")
    assert not result.errors, result.errors
    return list(result.resources)


def test_an_orphan_applies_to_its_destination_hosts_with_a_warning() -> None:
    items = loaded(
        VS.format(
            name="faults",
            spec="  http:\n  - route: [{destination: {host: reviews}, weight: 100}, {destination: {host: ratings}, weight: 0}]\n"
            "  - route: [{destination: {host: reviews, subset: v2}}]",
        )
    )
    hosts, messages = orphan_hosts(items)
    assert hosts == {("default", "faults"): ("reviews", "ratings")}
    (m,) = messages
    assert (m.path, m.name, m.severity.value) == ("spec.hosts", "faults", "warning")
    assert "Istio would ignore it" in m.message


def test_a_delegate_and_a_vs_with_hosts_are_not_orphans() -> None:
    items = loaded(
        VS.format(
            name="parent",
            spec="  hosts: [reviews]\n  http:\n  - match: [{uri: {prefix: /v2}}]\n    delegate: {name: child}",
        ),
        VS.format(name="child", spec="  http:\n  - route: [{destination: {host: reviews}}]"),
    )
    assert orphan_hosts(items) == ({}, [])
