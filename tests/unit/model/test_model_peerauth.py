"""PeerAuthentication precedence: mesh < namespace < workload < port, UNSET inheritance,
the first policy of a level winning, and the mode of a local-mode inbound listener."""

from __future__ import annotations

from dataclasses import replace

import pytest

from plait.api import load_text
from plait.api.security import MtlsMode
from plait.model.labels import Labels
from plait.model.meshsettings import MeshSettings
from plait.model.peerauth import (
    PeerAuthentications,
    inbound_mode,
    listener_mode,
    served_ports,
    workload_port,
)
from plait.model.registry import ServicePort
from plait.model.snapshot import MeshSnapshot, build_snapshot
from policykit import peer_authentication

STRICT, PERMISSIVE, DISABLE = MtlsMode.STRICT, MtlsMode.PERMISSIVE, MtlsMode.DISABLE
REVIEWS = Labels.of({"app": "reviews", "version": "v1"})
RATINGS = Labels.of({"app": "ratings"})


def pa(
    name: str,
    namespace: str,
    mode: str | None = None,
    selector: dict[str, str] | None = None,
    ports: dict[int, str] | None = None,
) -> str:
    spec: list[str] = []
    if mode is not None:
        spec.append(f"mtls: {{mode: {mode}}}")
    if selector is not None:
        spec.append(f"selector: {{matchLabels: {selector}}}")
    if ports:
        entries = ", ".join(f"{p}: {{mode: {m}}}" for p, m in ports.items())
        spec.append(f"portLevelMtls: {{{entries}}}")
    return peer_authentication(name, f"{{{', '.join(spec)}}}", namespace)


def snap(*docs: str) -> MeshSnapshot:
    result = load_text("".join(docs), "mesh.yaml")
    assert not result.errors, [str(m) for m in result.errors]
    return build_snapshot(result.resources, (), 1)


def mode(snapshot: MeshSnapshot, namespace: str, labels: Labels, port: int = 9080) -> MtlsMode:
    return PeerAuthentications(snapshot).mode(namespace, labels, port)


def test_no_policy_is_permissive() -> None:
    assert mode(snap(), "default", REVIEWS) is PERMISSIVE


def test_mesh_policy_lives_in_the_root_namespace() -> None:
    s = snap(pa("default", "istio-system", "STRICT"))
    assert mode(s, "default", REVIEWS) is STRICT
    assert mode(s, "team", RATINGS) is STRICT
    assert mode(s, "istio-system", Labels.of({"istio": "ingressgateway"})) is STRICT


def test_a_non_root_namespace_policy_is_only_namespace_wide() -> None:
    s = snap(pa("default", "team", "STRICT"))
    assert mode(s, "team", RATINGS) is STRICT
    assert mode(s, "default", REVIEWS) is PERMISSIVE


def test_the_root_namespace_follows_the_mesh_settings() -> None:
    s = replace(
        snap(pa("default", "mesh-root", "STRICT"), pa("ignored", "istio-system", "DISABLE")),
        mesh=MeshSettings(root_namespace="mesh-root"),
    )
    assert mode(s, "default", REVIEWS) is STRICT
    assert mode(s, "istio-system", REVIEWS) is DISABLE  # now just a namespace policy


def test_namespace_beats_mesh_and_unset_inherits() -> None:
    s = snap(
        pa("mesh", "istio-system", "STRICT"),
        pa("disabled", "legacy", "DISABLE"),
        pa("inherit", "team", "UNSET"),
        pa("empty", "other"),  # no mtls at all: UNSET
    )
    assert mode(s, "legacy", RATINGS) is DISABLE
    assert mode(s, "team", RATINGS) is STRICT
    assert mode(s, "other", RATINGS) is STRICT
    assert mode(s, "default", RATINGS) is STRICT


def test_unset_mesh_policy_is_permissive() -> None:
    s = snap(pa("mesh", "istio-system", "UNSET"), pa("ns", "team", "UNSET"))
    assert mode(s, "team", RATINGS) is PERMISSIVE


def test_workload_policy_selects_by_labels_in_its_namespace() -> None:
    s = snap(
        pa("ns", "default", "PERMISSIVE"),
        pa("reviews", "default", "STRICT", selector={"app": "reviews"}),
    )
    assert mode(s, "default", REVIEWS) is STRICT
    assert mode(s, "default", RATINGS) is PERMISSIVE
    assert mode(s, "team", REVIEWS) is PERMISSIVE  # another namespace: not selected


def test_workload_unset_inherits_namespace_then_mesh() -> None:
    s = snap(
        pa("mesh", "istio-system", "STRICT"),
        pa("ns", "default", "DISABLE"),
        pa("reviews", "default", "UNSET", selector={"app": "reviews"}),
        pa("ratings", "team", None, selector={"app": "ratings"}),
    )
    assert mode(s, "default", REVIEWS) is DISABLE
    assert mode(s, "team", RATINGS) is STRICT


def test_port_level_overrides_and_unset_port_inherits_the_workload() -> None:
    s = snap(
        pa("mesh", "istio-system", "STRICT"),
        pa(
            "reviews",
            "default",
            "UNSET",
            selector={"app": "reviews"},
            ports={8080: "DISABLE", 9000: "UNSET", 9090: "PERMISSIVE"},
        ),
    )
    policies = PeerAuthentications(s)
    assert policies.mode("default", REVIEWS, 8080) is DISABLE
    assert policies.mode("default", REVIEWS, 9000) is STRICT
    assert policies.mode("default", REVIEWS, 9090) is PERMISSIVE
    assert policies.mode("default", REVIEWS, 9080) is STRICT
    assert policies.workload("default", REVIEWS).ports == {
        8080: DISABLE,
        9000: STRICT,
        9090: PERMISSIVE,
    }
    assert policies.mode("default", RATINGS, 8080) is STRICT  # not selected


def test_each_mode_names_the_policy_field_that_set_it() -> None:
    """What `plait analyze` reports at: the policy and the path of the deciding field."""
    s = snap(
        pa("mesh", "istio-system", "STRICT"),
        pa("ns", "default", "UNSET"),
        pa("r", "default", "UNSET", selector={"app": "reviews"}, ports={8080: "DISABLE"}),
    )
    policy = PeerAuthentications(s).workload("default", REVIEWS)

    def decided(port: int | None) -> tuple[MtlsMode, str | None, tuple[str | int, ...]]:
        d = policy.decided(port)
        return d.mode, d.item.resource.metadata.name if d.item else None, d.loc

    assert decided(None) == (STRICT, "mesh", ("spec", "mtls", "mode"))
    assert decided(9080) == (STRICT, "mesh", ("spec", "mtls", "mode"))
    assert decided(8080) == (DISABLE, "r", ("spec", "portLevelMtls", "8080", "mode"))
    assert [d.mode for d in policy.every_mode()] == [STRICT, DISABLE]
    nothing = PeerAuthentications(snap()).workload("default", REVIEWS).decided(None)
    assert (nothing.mode, nothing.item, nothing.loc) == (PERMISSIVE, None, ())


def test_first_policy_by_name_wins_at_each_level() -> None:
    """Istio takes the oldest; plait, with no creation time, the first by name."""
    s = snap(
        pa("b-ns", "default", "STRICT"),
        pa("a-ns", "default", "DISABLE"),
        pa("b-wl", "default", "PERMISSIVE", selector={"app": "reviews"}),
        pa("a-wl", "default", "STRICT", selector={"version": "v1"}),
    )
    assert mode(s, "default", REVIEWS) is STRICT  # a-wl
    assert mode(s, "default", RATINGS) is DISABLE  # a-ns


def test_selector_policies_in_the_root_namespace_are_ignored() -> None:
    s = snap(
        pa("mesh", "istio-system", "PERMISSIVE"),
        pa("everyone", "istio-system", "STRICT", selector={"app": "reviews"}),
        pa("gw", "istio-system", "DISABLE", selector={"istio": "ingressgateway"}),
    )
    assert mode(s, "default", REVIEWS) is PERMISSIVE
    assert mode(s, "istio-system", Labels.of({"istio": "ingressgateway"})) is PERMISSIVE


def test_empty_match_labels_is_a_namespace_policy() -> None:
    s = snap(pa("all", "default", "STRICT", selector={}))
    assert mode(s, "default", RATINGS) is STRICT


def test_workload_port_is_the_numeric_target_port_else_the_service_port() -> None:
    assert workload_port(ServicePort("http", 80, target_port=8080)) == 8080
    assert workload_port(ServicePort("http", 80, target_port="http-app")) == 80
    assert workload_port(ServicePort("http", 80)) == 80


SERVICES = """apiVersion: v1
kind: Service
metadata: {name: reviews}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 80, targetPort: 9080}, {name: http-admin, port: 81, targetPort: admin}]
---
apiVersion: v1
kind: Service
metadata: {name: reviews-v1}
spec:
  selector: {app: reviews, version: v1}
  ports: [{name: http, port: 82, targetPort: 9080}]
---
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: team}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 7000}]
"""


def test_served_ports_are_the_workload_ports_of_selecting_services() -> None:
    assert served_ports(snap(SERVICES), "default", REVIEWS) == [81, 9080]
    assert served_ports(snap(SERVICES), "default", RATINGS) == []


@pytest.mark.parametrize(
    ("modes", "expected"),
    [
        ([], PERMISSIVE),
        ([STRICT], STRICT),
        ([DISABLE, DISABLE], DISABLE),
        ([STRICT, PERMISSIVE], PERMISSIVE),
        ([STRICT, DISABLE], PERMISSIVE),  # one socket must accept both kinds of caller
    ],
)
def test_listener_mode_accepts_what_any_port_accepts(
    modes: list[MtlsMode], expected: MtlsMode
) -> None:
    assert listener_mode(modes) is expected


def test_inbound_mode_combines_the_modes_of_the_served_ports() -> None:
    def inbound(*docs: str, labels: Labels = REVIEWS) -> MtlsMode:
        s = snap(SERVICES, *docs)
        return inbound_mode(PeerAuthentications(s), s, "default", labels)

    assert inbound() is PERMISSIVE
    assert inbound(pa("m", "istio-system", "STRICT")) is STRICT
    one_port_off = pa("r", "default", "STRICT", selector={"app": "reviews"}, ports={81: "DISABLE"})
    assert inbound(one_port_off) is PERMISSIVE
    both_off = pa(
        "r",
        "default",
        "STRICT",
        selector={"app": "reviews"},
        ports={81: "DISABLE", 9080: "DISABLE"},
    )
    assert inbound(both_off) is DISABLE
    # a port no Service reaches does not count; a workload no Service selects: its mode
    stray = pa("r", "default", "STRICT", selector={"app": "reviews"}, ports={5000: "DISABLE"})
    assert inbound(stray) is STRICT
    assert inbound(pa("x", "default", "STRICT", selector={"app": "ratings"}), labels=RATINGS) is (
        STRICT
    )
