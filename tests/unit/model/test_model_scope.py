"""Scoping (model.scope): egress host matching, exportTo visibility, which Sidecar applies,
and what a scope holds."""

from __future__ import annotations

import pytest

from plait.api import load_text
from plait.model.labels import Labels
from plait.model.meshsettings import OutboundMode
from plait.model.scope import EgressHost, Scope, build_scope, exported_to, host_matches
from plait.model.snapshot import MeshSnapshot, build_snapshot


def snapshot(text: str) -> MeshSnapshot:
    result = load_text(text, "mesh.yaml")
    assert not result.errors, [str(m) for m in result.errors]
    return build_snapshot(result.resources, (), 1)


def service(name: str, ns: str, port: int = 8080, export: str = "") -> str:
    annotations = f", annotations: {{networking.istio.io/exportTo: '{export}'}}" if export else ""
    return f"""---
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: {ns}{annotations}}}
spec:
  selector: {{app: {name}}}
  ports: [{{name: http, port: {port}}}, {{name: http-admin, port: 9000}}]
"""


def sidecar(name: str, ns: str, hosts: str, extra: str = "") -> str:
    return f"""---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {{name: {name}, namespace: {ns}}}
spec:
{extra}  egress: [{{hosts: {hosts}}}]
"""


MESH = (
    service("a", "shop")
    + service("b", "shop")
    + service("c", "other")
    + service("d", "other")
    + service("e", "istio-system")
)
A, B, C, D, E = (
    f"{n}.{ns}.svc.cluster.local"
    for n, ns in (
        ("a", "shop"),
        ("b", "shop"),
        ("c", "other"),
        ("d", "other"),
        ("e", "istio-system"),
    )
)


def scope_of(snap: MeshSnapshot, ns: str, **labels: str) -> Scope:
    assert snap.scope_inputs is not None
    chosen = snap.sidecar_index.for_workload(ns, Labels.of(labels), "istio-system")
    return build_scope(snap.scope_inputs, ns, chosen)


# -- matching ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "hostname", "want"),
    [
        ("*", "a.shop.svc.cluster.local", True),
        ("a.shop.svc.cluster.local", "a.shop.svc.cluster.local", True),
        ("a.shop.svc.cluster.local", "b.shop.svc.cluster.local", False),
        ("*.shop.svc.cluster.local", "a.shop.svc.cluster.local", True),
        ("*.svc.cluster.local", "a.shop.svc.cluster.local", True),
        ("*.other.svc.cluster.local", "a.shop.svc.cluster.local", False),
        ("*.example.com", "api.example.com", True),
        ("*.example.com", "example.com", False),
        # a ServiceEntry's wildcard host is imported only by a pattern that covers it
        ("*.example.com", "*.api.example.com", True),
        ("api.example.com", "*.example.com", False),
        ("*.api.example.com", "*.example.com", False),
    ],
)
def test_egress_dns_names_match_like_istios(pattern: str, hostname: str, want: bool) -> None:
    assert host_matches(pattern, hostname) is want


def test_egress_namespaces_dot_star_and_tilde() -> None:
    dot = EgressHost.parse("./*", "shop")
    assert dot == EgressHost("shop", "*")
    assert dot.imports("shop", A) and not dot.imports("other", C)
    anywhere = EgressHost.parse("*/c.other.svc.cluster.local", "shop")
    assert anywhere.imports("other", C) and not anywhere.imports("other", D)
    assert not EgressHost.parse("~/*", "shop").imports("shop", A)
    named = EgressHost.parse("other/*", "shop")
    assert named.imports("other", D) and not named.imports("shop", A)


# -- exportTo --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("export_to", "namespace", "want"),
    [
        ((), "anywhere", True),
        (("*",), "anywhere", True),
        ((".",), "shop", True),
        ((".",), "other", False),
        (("other",), "other", True),
        (("other",), "shop", False),  # its own namespace is not implied
        ((".", "other"), "other", True),
        (("~",), "shop", False),
    ],
)
def test_export_to_visibility(export_to: tuple[str, ...], namespace: str, want: bool) -> None:
    assert exported_to(export_to, "shop", namespace) is want


def test_a_mesh_without_sidecars_or_restricted_exports_is_not_scoped() -> None:
    assert snapshot(MESH).scope_inputs is None
    assert snapshot(service("a", "shop", export="*")).scope_inputs is None
    assert snapshot(service("a", "shop", export=".")).scope_inputs is not None


def test_services_hidden_by_export_to_are_not_in_scope() -> None:
    snap = snapshot(
        service("a", "shop", export=".") + service("c", "other", export="shop") + service("d", "x")
    )
    D_X = "d.x.svc.cluster.local"
    assert set(scope_of(snap, "shop").clusters) == {A, C, D_X}
    assert set(scope_of(snap, "other").clusters) == {D_X}  # c: exported to shop only
    assert set(scope_of(snap, "x").clusters) == {D_X}


def test_service_entry_export_to_dot_and_tilde() -> None:
    entry = """---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: {name}, namespace: shop}}
spec:
  hosts: [{host}]
  exportTo: ["{export}"]
  ports: [{{number: 443, name: tls, protocol: TLS}}]
"""
    snap = snapshot(
        entry.format(name="mine", host="api.example.com", export=".")
        + entry.format(name="none", host="hidden.example.com", export="~")
    )
    assert set(scope_of(snap, "shop").clusters) == {"api.example.com"}
    assert set(scope_of(snap, "other").clusters) == set()


def test_virtual_service_export_to_decides_who_routes_with_it() -> None:
    vs = """---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: to-b, namespace: shop}
spec:
  hosts: [a.shop.svc.cluster.local]
  exportTo: ["."]
  http: [{route: [{destination: {host: b.shop.svc.cluster.local}}]}]
"""
    snap = snapshot(MESH + vs)
    assert snap.scope_inputs is not None
    assert A in scope_of(snap, "shop").virtual_services
    assert A not in scope_of(snap, "other").virtual_services


# -- which Sidecar ----------------------------------------------------------------------------


def test_selector_wins_over_namespace_sidecar_which_wins_over_root_default() -> None:
    snap = snapshot(
        MESH
        + sidecar("default", "istio-system", '["istio-system/*"]')
        + sidecar("default", "shop", '["./*"]')
        + sidecar(
            "for-web",
            "shop",
            '["other/c.other.svc.cluster.local"]',
            "  workloadSelector: {labels: {app: web}}\n",
        )
    )
    web = scope_of(snap, "shop", app="web")
    assert web.sidecar == ("shop", "for-web") and set(web.clusters) == {C}
    api = scope_of(snap, "shop", app="api")
    assert api.sidecar == ("shop", "default") and set(api.clusters) == {A, B}
    # the root namespace's default: '.' is the proxy's own namespace, not istio-system
    other = scope_of(snap, "other", app="x")
    assert other.sidecar == ("istio-system", "default") and set(other.clusters) == {E}
    root = snapshot(MESH + sidecar("default", "istio-system", '["./*"]'))
    assert set(scope_of(root, "other").clusters) == {C, D}


def test_a_selecting_sidecar_in_the_root_namespace_is_not_a_default() -> None:
    snap = snapshot(
        MESH
        + sidecar("picky", "istio-system", '["./*"]', "  workloadSelector: {labels: {app: x}}\n")
    )
    assert scope_of(snap, "other", app="x").sidecar is None


# -- what a scope holds ---------------------------------------------------------------------


def test_a_port_listener_imports_that_port_and_the_catch_all_routes_the_rest() -> None:
    text = (
        MESH
        + """---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: shop}
spec:
  egress:
  - port: {number: 9000, protocol: HTTP, name: admin}
    hosts: ["other/*"]
  - hosts: ["./*"]
"""
    )
    scope = scope_of(snapshot(text), "shop")
    assert scope.clusters == {
        A: frozenset({8080, 9000}),
        B: frozenset({8080, 9000}),
        C: frozenset({9000}),
        D: frozenset({9000}),
    }
    assert scope.routes_port(C, 9000) and scope.routes_port(A, 8080)
    assert not scope.routes_port(A, 9000)  # port 9000 has its own listener, without a
    assert not scope.routes_port(C, 8080)


def test_virtual_service_destinations_are_imported_with_it() -> None:
    vs = """---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: a, namespace: shop}
spec:
  hosts: [a]
  http: [{route: [{destination: {host: c.other.svc.cluster.local}}]}]
"""
    snap = snapshot(MESH + vs + sidecar("default", "shop", '["shop/a.shop.svc.cluster.local"]'))
    scope = scope_of(snap, "shop")
    assert set(scope.clusters) == {A, C}
    assert scope.routes_port(A, 8080) and not scope.routes_port(C, 8080)
    assert scope.virtual_services[A] == ("shop", "a")


def test_outbound_traffic_policy_of_the_sidecar_else_the_mesh() -> None:
    policy = "  outboundTrafficPolicy: {mode: REGISTRY_ONLY}\n"
    snap = snapshot(MESH + sidecar("default", "shop", '["./*"]', policy))
    assert scope_of(snap, "shop").outbound_mode is OutboundMode.REGISTRY_ONLY
    assert scope_of(snap, "other").outbound_mode is OutboundMode.ALLOW_ANY


def test_no_egress_means_everything_exported() -> None:
    text = (
        MESH
        + """---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: shop}
spec:
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
"""
    )
    assert set(scope_of(snapshot(text), "shop").clusters) == {A, B, C, D, E}
