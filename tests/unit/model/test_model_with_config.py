"""with_config, the snapshot after a VirtualService / DestinationRule change: equal to a full
build of the new config in every field, with everything the change cannot touch the very
same object; any other kind of change is left to a full build (None)."""

from __future__ import annotations

from dataclasses import fields

import pytest

from configfiles import config
from plait.model.labels import Labels
from plait.model.registry import PortMap, WorkloadInstance
from plait.model.snapshot import MeshSnapshot, build_snapshot
from plait.model.withconfig import with_config


def service(name: str, ns: str = "default", export: str = "") -> str:
    annotations = f"annotations: {{networking.istio.io/exportTo: '{export}'}}, " if export else ""
    return f"""apiVersion: v1
kind: Service
metadata: {{{annotations}name: {name}, namespace: {ns}}}
spec:
  selector: {{app: {name}}}
  ports: [{{name: http, port: 8080}}]
"""


def vs(name: str, hosts: str, dest: str, extra: str = "", gateways: str = "") -> str:
    gw = f"  gateways: {gateways}\n" if gateways else ""
    return f"""apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: {name}, namespace: default}}
spec:
  hosts: {hosts}
{gw}{extra}  http: [{{route: [{{destination: {{host: {dest}}}}}]}}]
"""


def dr(name: str, host: str, extra: str = "", ns: str = "default") -> str:
    return f"""apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: {name}, namespace: {ns}}}
spec:
  host: {host}
{extra}  subsets: [{{name: v1, labels: {{version: v1}}}}]
"""


SIDECAR = """apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: front, namespace: team}
spec:
  workloadSelector: {labels: {app: front}}
  egress: [{hosts: [default/reviews.default.svc.cluster.local, ./*]}]
"""
GATEWAY = """apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: web, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]
"""
ORPHAN = """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: orphan, namespace: default}
spec:
  http: [{route: [{destination: {host: details}}]}]
"""
DELEGATING = """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: root, namespace: default}
spec:
  hosts: [details]
  http: [{match: [{uri: {prefix: /d}}], delegate: {name: leaf}}]
"""
LEAF = """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: leaf, namespace: default}
spec:
  http: [{route: [{destination: {host: details}}]}]
"""
TIMEOUT = "  exportTo: ['*']\n"

BASE: dict[str, str] = {
    "svc-reviews": service("reviews"),
    "svc-ratings": service("ratings"),
    "svc-details": service("details"),
    "svc-front": service("front", "team"),
    "sidecar": SIDECAR,
    "gateway": GATEWAY,
    "vs-reviews": vs("reviews", "[reviews]", "reviews"),
    "vs-ratings": vs("ratings", "[ratings, reviews]", "ratings"),  # wins reviews: first by name
    "vs-web": vs("web", '["*"]', "reviews", gateways="[web]"),
    "vs-orphan": ORPHAN,
    "dr-reviews": dr("reviews", "reviews"),
    "dr-ratings": dr("ratings", "ratings"),
    "dr-ratings-team": dr("ratings", "ratings.default.svc.cluster.local", ns="team"),
}

INSTANCES = [
    WorkloadInstance(
        name=f"{app}-0",
        workload=app,
        namespace=ns,
        labels=Labels.of({"app": app, "version": "v1"}),
        service_account=app,
        address="127.0.0.1",
        ports=PortMap.all_to(20000 + i),
    )
    for i, (app, ns) in enumerate(
        [("reviews", "default"), ("ratings", "default"), ("front", "team")]
    )
]


def build(files: dict[str, str], version: int = 1) -> MeshSnapshot:
    return build_snapshot(config(files), INSTANCES, version, ())


def without(name: str) -> dict[str, str]:
    return {k: v for k, v in BASE.items() if k != name}


CHANGES: list[tuple[str, dict[str, str]]] = [
    ("nothing", BASE),
    ("a VirtualService edited", BASE | {"vs-reviews": vs("reviews", "[reviews]", "ratings")}),
    ("a VirtualService moves hosts", BASE | {"vs-reviews": vs("reviews", "[details]", "details")}),
    (
        "the winner of a shared host drops it",
        BASE | {"vs-ratings": vs("ratings", "[ratings]", "ratings")},
    ),
    ("the other one drops it", BASE | {"vs-reviews": vs("reviews", "[details]", "reviews")}),
    (
        "a VirtualService's exportTo",
        BASE | {"vs-reviews": vs("reviews", "[reviews]", "reviews", "  exportTo: ['.']\n")},
    ),
    ("a VirtualService deleted", without("vs-reviews")),
    ("a VirtualService added", BASE | {"vs-new": vs("aaa", "[details]", "details")}),
    (
        "a gateway's VirtualService edited",
        BASE | {"vs-web": vs("web", '["*"]', "ratings", gateways="[web]")},
    ),
    (
        "a VirtualService bound to a gateway too",
        BASE | {"vs-reviews": vs("reviews", "[reviews]", "reviews", gateways="[web, mesh]")},
    ),
    ("an orphan edited", BASE | {"vs-orphan": ORPHAN.replace("details", "ratings")}),
    ("a delegate added", BASE | {"vs-root": DELEGATING, "vs-leaf": LEAF}),
    ("an orphan deleted", without("vs-orphan")),
    ("a DestinationRule edited", BASE | {"dr-reviews": dr("reviews", "reviews", TIMEOUT)}),
    ("a DestinationRule moves hosts", BASE | {"dr-reviews": dr("reviews", "details")}),
    ("a DestinationRule deleted", without("dr-ratings")),
    (
        "a DestinationRule exported to its namespace only",
        BASE | {"dr-ratings": dr("ratings", "ratings", "  exportTo: ['.']\n")},
    ),
    ("a conflicting DestinationRule added", BASE | {"dr-more": dr("reviews-more", "reviews")}),
    (
        "both kinds at once",
        BASE
        | {
            "vs-reviews": vs("reviews", "[reviews]", "ratings"),
            "dr-reviews": dr("reviews", "reviews", TIMEOUT),
        },
    ),
]
UNSCOPED = {k: v for k, v in BASE.items() if k != "sidecar"}
UNSCOPED_CHANGES: list[tuple[str, dict[str, str]]] = [
    (
        "unscoped: a VirtualService edited",
        UNSCOPED | {"vs-reviews": vs("reviews", "[reviews]", "ratings")},
    ),
    (
        "unscoped: an exportTo makes it scoped",
        UNSCOPED | {"vs-reviews": vs("reviews", "[reviews]", "reviews", "  exportTo: ['.']\n")},
    ),
    (
        "unscoped: a restricted DestinationRule",
        UNSCOPED | {"dr-ratings": dr("ratings", "ratings", "  exportTo: ['.']\n")},
    ),
]
CAN_CHANGE = {
    "version", "messages", "virtual_services", "destination_rules", "rules_by_host",
    "rule_warnings", "orphan_hosts", "orphan_messages", "routing", "scope_inputs",
    "restricted_rules",
}  # fmt: skip


@pytest.mark.parametrize(
    ("base", "change", "after"),
    [(BASE, *c) for c in CHANGES] + [(UNSCOPED, *c) for c in UNSCOPED_CHANGES],
    ids=[c[0] for c in CHANGES + UNSCOPED_CHANGES],
)
def test_equals_a_full_build(base: dict[str, str], change: str, after: dict[str, str]) -> None:
    before = build(base)
    got = with_config(before, config(base), config(after), 2, ())
    want = build(after, 2)
    assert got is not None, change
    for f in fields(MeshSnapshot):
        assert getattr(got, f.name) == getattr(want, f.name), f.name
        if f.name not in CAN_CHANGE:  # everything else is the very same object
            assert getattr(got, f.name) is getattr(before, f.name), f.name


def test_an_edit_keeps_the_unchanged_entries() -> None:
    before = build(BASE)
    after = BASE | {"vs-reviews": vs("reviews", "[reviews]", "ratings")}
    got = with_config(before, config(BASE), config(after), 2)
    assert got is not None
    assert got.routing.by_gateway is before.routing.by_gateway
    assert got.rules_by_host is before.rules_by_host
    assert got.orphan_hosts is before.orphan_hosts
    old, new = before.routing.by_name, got.routing.by_name
    assert [k for k in new if new[k] is not old[k]] == [("default", "reviews")]


def test_input_messages_are_the_new_ones() -> None:
    before = build(BASE)
    after = BASE | {"dr-more": dr("reviews-more", "reviews")}  # merge warning: two rules
    message = before.messages[0]
    got = with_config(before, config(BASE), config(after), 2, (message,))
    assert got is not None
    assert got.messages == build_snapshot(config(after), INSTANCES, 2, (message,)).messages
    assert got.messages[0] is message


@pytest.mark.parametrize(
    "after",
    [
        BASE | {"svc-details": service("details", export=".")},
        BASE | {"sidecar": SIDECAR.replace("./*", "~/*")},
        without("gateway"),
        BASE | {"vs-dup": vs("reviews", "[details]", "details")},  # the same name twice
    ],
    ids=["a Service", "a Sidecar", "a Gateway", "a duplicate name"],
)
def test_other_changes_are_left_to_a_full_build(after: dict[str, str]) -> None:
    assert with_config(build(BASE), config(BASE), config(after), 2) is None


def test_a_chain_of_changes_to_one_file_equals_full_builds() -> None:
    """A file is re-loaded whole: its unchanged resources come back as new, equal objects,
    which the snapshot does not take for changes (it keeps the old ones)."""

    def both(dest: str, hosts: str = "[reviews]", rule: str = "") -> str:
        return vs("reviews", hosts, dest) + "---\n" + dr("reviews", "reviews", rule)

    base = without("dr-reviews")
    steps = [
        base | {"vs-reviews": both("ratings")},
        base | {"vs-reviews": both("ratings", "[reviews, ratings]", TIMEOUT)},  # the rule too
        base | {"vs-reviews": both("details", "[reviews, ratings]", TIMEOUT)},
        base | {"vs-reviews": both("details", "[reviews]", TIMEOUT)},
        {k: v for k, v in base.items() if k != "vs-reviews"},
    ]
    files = base | {"vs-reviews": both("reviews")}
    snap = build(files)
    for version, after in enumerate(steps, start=2):
        got = with_config(snap, config(files), config(after), version)
        assert got is not None, version
        want = build(after, version)
        for f in fields(MeshSnapshot):
            assert getattr(got, f.name) == getattr(want, f.name), (version, f.name)
        if version in (2, 4, 5):  # the rule came back equal: it is not a change
            assert got.rules_by_host is snap.rules_by_host
            assert got.destination_rules is snap.destination_rules
        snap, files = got, after
