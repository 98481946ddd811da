"""`plait analyze` on security policies: each check warns where the problem is written and
says what to do, and the shop with realistic policies gets no warning."""

from __future__ import annotations

import shutil
from functools import cache
from pathlib import Path

import pytest

from plait.analysis import analyze, vet
from plait.api import Loaded, load_path, load_text
from plait.api.loader import yaml_files
from plait.cli.analyze import analyze_directory
from plait.errors import ConfigMessage, Severity
from plait.model.snapshot import build_snapshot
from policykit import authorization_policy as ap
from policykit import peer_authentication as pa
from policykit import request_authentication as ra

ROOT = Path(__file__).resolve().parents[3]
SHOP = ROOT / "examples" / "shop"
FILE = "policies.yaml"
SHOP_POLICIES = "security.yaml"


@cache
def shop() -> tuple[Loaded, ...]:
    """The shop without its own policies (security.yaml), so each test's stand alone."""
    out: list[Loaded] = []
    for path in yaml_files(SHOP):
        if path.name == SHOP_POLICIES:
            continue
        result = vet(load_path(path))
        assert not result.messages, [str(m) for m in result.messages]
        out += result.resources
    return tuple(out)


def messages(text: str) -> list[ConfigMessage]:
    """Every analysis message of the shop plus `text` (all must be about `text`)."""
    extra = vet(load_text(text, FILE))
    assert not extra.errors, [str(m) for m in extra.errors]
    config = [*shop(), *extra.resources]
    found = analyze(build_snapshot(config, (), 1, extra.messages), config)
    assert all(m.file == FILE and m.severity is Severity.WARNING for m in found), found
    return found


def where(text: str) -> list[tuple[int, str]]:
    return [(m.document, m.path) for m in messages(text)]


def one(text: str) -> ConfigMessage:
    [found] = messages(text)
    return found


def from_(source: str, selector: str = "{matchLabels: {app: payment}}") -> str:
    return f"  selector: {selector}\n  rules:\n  - from: [{{source: {source}}}]"


LEGACY = """---
apiVersion: apps/v1
kind: Deployment
metadata: {name: legacy}
spec:
  selector: {matchLabels: {app: legacy}}
  template:
    metadata:
      labels: {app: legacy}
      annotations: {sidecar.istio.io/inject: "false"}
    spec:
      serviceAccountName: legacy
      containers: [{name: legacy, command: [python, -m, app.legacy]}]
"""
STRICT_MESH = pa("default", "  mtls: {mode: STRICT}", "istio-system")
DISABLE_PAYMENT = pa(
    "payment", "  selector: {matchLabels: {app: payment}}\n  mtls: {mode: DISABLE}"
)
ORDERS = "cluster.local/ns/default/sa/orders"
JWT = ra(
    "jwt",
    "  selector: {matchLabels: {app: payment}}\n"
    "  jwtRules: [{issuer: 'https://id.example.com', jwksUri: 'https://id.example.com/keys'}]",
)


# --- the shop with realistic policies ------------------------------------------------------

REALISTIC = (
    STRICT_MESH
    + pa("reviews", "  selector: {matchLabels: {app: reviews}}\n  mtls: {mode: UNSET}")
    + ap(
        "payment",
        from_(f"{{principals: ['{ORDERS}']}}")
        + "\n    to: [{operation: {methods: [POST], paths: ['/pay*'], ports: ['8080']}}]",
    )
    + ap(
        "frontend",
        "  selector: {matchLabels: {app: frontend}}\n  rules:\n"
        "  - from: [{source: {principals: "
        "['cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account']}}]",
    )
    + ap(
        "inventory",
        "  selector: {matchLabels: {app: inventory}}\n  rules:\n"
        "  - from: [{source: {serviceAccounts: [default/orders]}}]\n"
        "    when: [{key: source.namespace, values: [default]}]",
    )
    + ap(
        "deny-delete",
        "  action: DENY\n  rules:\n  - to: [{operation: {methods: [DELETE]}}]\n"
        "    from: [{source: {notNamespaces: [default], notPrincipals: ['*/sa/admin']}}]",
    )
    + ap("audit", "  action: AUDIT\n  rules: [{to: [{operation: {paths: [/admin*]}}]}]")
    + ap("deny-all-in-ns", "", "istio-system")
    + JWT
    + ap("payment-jwt", from_("{requestPrincipals: ['https://id.example.com/alice', '*']}"))
    + ra(
        "gateway-jwt",
        "  selector: {matchLabels: {istio: ingressgateway}}\n"
        "  jwtRules: [{issuer: 'https://id.example.com', jwksUri: 'https://id.example.com/k'}]",
        "istio-system",
    )
    + ap(
        "gateway",
        "  selector: {matchLabels: {istio: ingressgateway}}\n  rules:\n"
        "  - when: [{key: 'request.auth.claims[group]', values: [shoppers]}]\n"
        "  - to: [{operation: {paths: [/healthz], ports: ['8080']}}]",
        "istio-system",
    )
    + ap("reviews-by-ref", "  targetRef: {kind: Service, name: reviews}\n  rules: [{}]")
)


def test_the_shop_with_realistic_policies_gets_no_warning() -> None:
    assert messages(REALISTIC) == []


def test_plait_analyze_runs_the_checks_on_a_directory(tmp_path: Path) -> None:
    mesh = shutil.copytree(SHOP, tmp_path / "shop", ignore=shutil.ignore_patterns(".plait"))
    (mesh / FILE).write_text(ap("p", from_("{principals: [cluster.local/ns/default/sa/nobody]}")))
    report = analyze_directory(mesh)
    assert [(m.name, m.path) for m in report.messages] == [
        ("p", "spec.rules[0].from[0].source.principals[0]")
    ]


def test_without_the_config_the_security_checks_are_skipped() -> None:
    extra = vet(load_text(ap("p", from_("{principals: [x/ns/y/sa/z]}")), FILE))
    config = [*shop(), *extra.resources]
    assert analyze(build_snapshot(config, (), 1)) == []


# --- 1. unknown principals and namespaces -------------------------------------------------


def test_a_principal_no_workload_has_warns_at_its_value() -> None:
    found = one(ap("p", from_(f"{{principals: ['{ORDERS}', cluster.local/ns/default/sa/nobody]}}")))
    assert (found.document, found.path) == (0, "spec.rules[0].from[0].source.principals[1]")
    assert "'nobody'" in found.message and "default/orders" in found.message
    assert "fix the name" in found.message


@pytest.mark.parametrize(
    ("source", "field"),
    [
        ("{notPrincipals: [cluster.local/ns/shop/sa/orders]}", "notPrincipals"),
        ("{serviceAccounts: [default/ordrs]}", "serviceAccounts"),
        ("{notServiceAccounts: [other/orders]}", "notServiceAccounts"),
        ("{namespaces: [prod]}", "namespaces"),
        ("{notNamespaces: [prod]}", "notNamespaces"),
    ],
)
def test_unknown_identities_in_every_source_field_warn(source: str, field: str) -> None:
    found = one(ap("p", from_(source)))
    assert found.path == f"spec.rules[0].from[0].source.{field}[0]"
    assert "no workload in the config runs" in found.message and "fix the name" in found.message


def test_unknown_identities_in_when_conditions_warn() -> None:
    spec = (
        "  rules:\n  - when:\n"
        "    - {key: source.principal, values: [cluster.local/ns/default/sa/ghost]}\n"
        "    - {key: source.namespace, notValues: [staging]}\n"
        "    - {key: source.serviceAccount, values: [default/orders]}"
    )
    assert where(ap("p", spec)) == [
        (0, "spec.rules[0].when[0].values[0]"),
        (0, "spec.rules[0].when[1].notValues[0]"),
    ]


def test_a_spiffe_uri_is_no_principal() -> None:
    found = one(ap("p", from_("{principals: ['spiffe://cluster.local/ns/default/sa/orders']}")))
    assert found.path == "spec.rules[0].from[0].source.principals[0]"
    assert "without 'spiffe://'" in found.message


def test_another_trust_domain_warns_but_cluster_local_names_the_mesh_s_own() -> None:
    mesh = (
        "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: istio, namespace: istio-system}\n"
        "data:\n  mesh: |\n    trustDomain: example.org\n"
    )
    good = ["example.org/ns/default/sa/orders", ORDERS]
    assert messages(mesh + ap("p", from_(f"{{principals: {good}}}"))) == []
    found = one(ap("p", from_("{principals: [example.org/ns/default/sa/orders]}")))
    assert "trust domain 'example.org' is not the mesh's ('cluster.local')" in found.message
    assert found.message.endswith(f"write {ORDERS}")


def test_known_and_wildcard_identities_do_not_warn() -> None:
    source = (
        "{principals: ['*', 'cluster.local/ns/default/sa/*', '*/ns/other/sa/x', "
        f"'{ORDERS}'], namespaces: ['prod-*', default, istio-system]}}"
    )
    assert messages(ap("p", from_(source))) == []


# --- 2. policies selecting nothing --------------------------------------------------------


def test_a_selector_matching_no_workload_warns() -> None:
    found = one(ap("p", "  selector: {matchLabels: {app: paymnt}}"))
    assert found.path == "spec.selector.matchLabels"
    assert "app=paymnt" in found.message and "fix the labels" in found.message


def test_a_root_namespace_policy_selects_in_every_namespace_but_peer_auth_does_not() -> None:
    selector = "  selector: {matchLabels: {app: payment}}"
    assert messages(ap("p", selector, "istio-system") + ra("r", selector, "istio-system")) == []
    found = one(pa("p", selector + "\n  mtls: {mode: STRICT}", "istio-system"))
    assert found.path == "spec.selector" and "root namespace" in found.message
    assert "put it in the namespace of the workloads" in found.message


def test_a_peer_authentication_never_selects_the_gateway() -> None:
    found = one(pa("g", "  selector: {matchLabels: {istio: ingressgateway}}", "istio-system"))
    assert found.path == "spec.selector" and "root namespace" in found.message
    found = one(pa("g", "  selector: {matchLabels: {istio: ingressgateway}}"))
    assert found.path == "spec.selector.matchLabels"
    assert "no workload in namespace default has the labels istio=ingressgateway" in found.message


def test_a_target_ref_to_a_missing_service_or_gateway_warns() -> None:
    found = one(ra("r", "  targetRef: {kind: Service, name: paymnt}"))
    assert (
        found.path == "spec.targetRef.name"
        and "Service default/paymnt does not exist" in found.message
    )
    text = ap("p", "  targetRefs: [{kind: Gateway, name: shop-gateway}, {kind: Gateway, name: x}]")
    assert where(text) == []  # one existing target is enough
    found = one(ap("p", "  targetRefs: [{kind: Gateway, name: other}]"))
    assert found.path == "spec.targetRefs[0].name" and "fix the name" in found.message
    found = one(ap("p", "  targetRef: {kind: Service, name: payment, namespace: shop}"))
    assert found.path == "spec.targetRef.namespace"


def test_a_namespace_wide_policy_where_no_workload_runs_warns() -> None:
    found = one(pa("p", "  mtls: {mode: STRICT}", "staging"))
    assert (found.path, found.name) == ("metadata.namespace", "p")
    assert "no workload runs in namespace staging" in found.message
    assert messages(pa("p", "  mtls: {mode: STRICT}", "istio-system")) == []  # mesh-wide


def test_a_policy_selecting_only_sidecarless_workloads_warns() -> None:
    found = one(LEGACY + ap("p", "  selector: {matchLabels: {app: legacy}}"))
    assert (found.document, found.path) == (1, "spec.selector")
    assert "default/legacy" in found.message and "remove the annotation" in found.message


# --- 3. STRICT and callers without a sidecar ----------------------------------------------


def test_strict_with_sidecarless_workloads_warns_naming_them() -> None:
    found = one(LEGACY + STRICT_MESH)
    assert (found.document, found.path, found.kind) == (1, "spec.mtls.mode", "PeerAuthentication")
    assert "without a sidecar (default/legacy)" in found.message
    assert "default/payment" in found.message and "PERMISSIVE" in found.message


def test_a_strict_port_entry_warns_at_the_entry() -> None:
    spec = "  selector: {matchLabels: {app: payment}}\n  portLevelMtls: {8080: {mode: STRICT}}"
    found = one(LEGACY + pa("p", spec))
    assert found.path == 'spec.portLevelMtls["8080"].mode'
    assert "cannot call default/payment on port 8080" in found.message


def test_strict_without_sidecarless_workloads_or_permissive_with_them_is_fine() -> None:
    assert messages(STRICT_MESH) == []
    assert messages(LEGACY + pa("default", "  mtls: {mode: PERMISSIVE}", "istio-system")) == []
    # legacy's namespace-level STRICT does not hold where the workload level says PERMISSIVE
    text = (
        LEGACY
        + pa("ns", "  mtls: {mode: STRICT}")
        + "".join(
            pa(app, f"  selector: {{matchLabels: {{app: {app}}}}}\n  mtls: {{mode: PERMISSIVE}}")
            for app in (
                "frontend",
                "orders",
                "inventory",
                "payment",
                "risk-assessment",
                "reviews",
                "recommendations",
                "cache",
            )
        )
    )
    assert messages(text) == []


def dr(tls: str) -> str:
    return f"""---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: payment}}
spec:
  host: payment
  trafficPolicy:
{tls}
"""


def test_destination_rule_plain_text_to_strict_workloads_warns() -> None:
    found = one(STRICT_MESH + dr("    tls: {mode: DISABLE}"))
    assert (found.document, found.path, found.kind) == (
        1,
        "spec.trafficPolicy.tls.mode",
        "DestinationRule",
    )
    assert "default/payment" in found.message and "istio-system/default" in found.message
    assert "Remove this 'tls'" in found.message
    found = one(
        STRICT_MESH + dr("    portLevelSettings: [{port: {number: 8080}, tls: {mode: DISABLE}}]")
    )
    assert found.path == "spec.trafficPolicy.portLevelSettings[0].tls.mode"


def test_destination_rule_plain_text_is_fine_where_plain_text_is_accepted() -> None:
    assert messages(dr("    tls: {mode: DISABLE}")) == []
    assert messages(STRICT_MESH + dr("    tls: {mode: ISTIO_MUTUAL}")) == []
    overridden = "    tls: {mode: DISABLE}\n    portLevelSettings: [{port: {number: 8080}, tls: {mode: ISTIO_MUTUAL}}]"
    assert messages(STRICT_MESH + dr(overridden)) == []


TWO_PORTS = """---
apiVersion: v1
kind: Service
metadata: {name: payment-admin}
spec:
  selector: {app: payment}
  ports: [{name: http-admin, port: 9090}]
"""


def test_a_strict_port_sharing_the_local_listener_with_a_laxer_one_warns() -> None:
    spec = (
        "  selector: {matchLabels: {app: payment}}\n  mtls: {mode: STRICT}\n"
        "  portLevelMtls: {9090: {mode: DISABLE}}"
    )
    found = one(TWO_PORTS + pa("p", spec))
    assert (found.document, found.path) == (1, "spec.mtls.mode")
    assert "ports 8080, 9090 of default/payment" in found.message
    assert "Give the ports one mode" in found.message
    assert messages(TWO_PORTS + pa("p", spec.replace("DISABLE", "STRICT"))) == []


# --- 4. rules that can never match --------------------------------------------------------


def test_peer_identity_under_disable_never_matches_and_the_allow_policy_denies_all() -> None:
    found = messages(DISABLE_PAYMENT + ap("p", from_(f"{{principals: ['{ORDERS}']}}")))
    assert [(m.document, m.path) for m in found] == [
        (1, "spec.rules[0].from[0].source.principals"),
        (1, "spec.rules"),
    ]
    rule, summary = found
    assert "PeerAuthentication DISABLE" in rule.message and "allows nothing" in rule.message
    assert "Use PERMISSIVE or STRICT there" in rule.message
    assert "every request to default/payment is denied" in summary.message
    assert "Fix the rules" in summary.message


def test_not_forms_and_other_modes_do_not_need_a_peer_identity() -> None:
    assert messages(DISABLE_PAYMENT + ap("p", from_("{notNamespaces: [default]}"))) == []
    assert messages(ap("p", from_(f"{{principals: ['{ORDERS}']}}"))) == []


def test_a_peer_key_condition_under_disable_never_holds() -> None:
    spec = "  selector: {matchLabels: {app: payment}}\n  rules:\n  - when: [{key: source.namespace, values: [default]}]"
    assert where(DISABLE_PAYMENT + ap("p", spec)) == [
        (1, "spec.rules[0].when[0].values"),
        (1, "spec.rules"),
    ]


def test_a_value_in_a_field_and_its_not_form_never_matches() -> None:
    spec = "  selector: {matchLabels: {app: payment}}\n  rules:\n  - to: [{operation: {methods: [GET], notMethods: [GET]}}]"
    found = messages(ap("p", spec))
    assert [m.path for m in found] == ["spec.rules[0].to[0].operation.notMethods", "spec.rules"]
    assert "'methods' and 'notMethods' both list GET" in found[0].message
    assert "Remove them from one of the two" in found[0].message


def test_a_partly_shared_value_is_dead_but_the_rule_lives() -> None:
    spec = "  selector: {matchLabels: {app: payment}}\n  rules:\n  - to: [{operation: {methods: [GET, POST], notMethods: [GET]}}]"
    found = one(ap("p", spec))
    assert found.path == "spec.rules[0].to[0].operation.notMethods"
    assert "so they are dead" in found.message and "allows nothing" not in found.message


def test_one_live_to_entry_keeps_the_rule_alive() -> None:
    spec = (
        "  selector: {matchLabels: {app: payment}}\n  rules:\n  - to:\n"
        "    - {operation: {ports: ['9999']}}\n    - {operation: {ports: ['8080']}}"
    )
    found = one(ap("p", spec))
    assert found.path == "spec.rules[0].to[0].operation.ports"
    assert "9999 is no port of default/payment (their ports: 8080)" in found.message
    assert "not the Service port" in found.message and "allows nothing" not in found.message


def test_ports_of_the_workload_match() -> None:
    spec = "  selector: {matchLabels: {app: payment}}\n  rules:\n  - to: [{operation: {ports: ['8080']}}]"
    assert messages(ap("p", spec)) == []
    when = "  selector: {matchLabels: {app: payment}}\n  rules:\n  - when: [{key: destination.port, values: ['80']}]"
    assert where(ap("p", when)) == [(0, "spec.rules[0].when[0].values"), (0, "spec.rules")]


def test_request_principals_without_a_request_authentication_never_match() -> None:
    found = messages(ap("p", from_("{requestPrincipals: ['*']}")))
    assert [m.path for m in found] == [
        "spec.rules[0].from[0].source.requestPrincipals",
        "spec.rules",
    ]
    assert "no RequestAuthentication applies to default/payment" in found[0].message
    assert "Add a RequestAuthentication" in found[0].message
    assert messages(JWT + ap("p", from_("{requestPrincipals: ['*']}"))) == []


def test_request_principals_of_an_unknown_issuer_never_match() -> None:
    source = (
        "{requestPrincipals: ['https://id.example.com/alice', 'https://other.example.com/bob']}"
    )
    found = one(JWT + ap("p", from_(source)))
    assert found.path == "spec.rules[0].from[0].source.requestPrincipals[1]"
    assert "issuers: https://id.example.com" in found.message and "Fix the issuer" in found.message


def test_a_dead_allow_policy_next_to_a_live_one_adds_nothing() -> None:
    other = ap("q", from_(f"{{principals: ['{ORDERS}']}}"))
    found = messages(ap("p", from_("{requestPrincipals: ['*']}")) + other)
    assert [(m.document, m.path) for m in found] == [
        (0, "spec.rules[0].from[0].source.requestPrincipals"),
        (0, "spec.rules"),
    ]
    assert "adds nothing to the other ALLOW policies" in found[1].message


def test_a_dead_deny_rule_denies_nothing_and_a_deny_policy_needs_rules() -> None:
    spec = from_("{requestPrincipals: ['*']}").replace("  rules:", "  action: DENY\n  rules:")
    found = one(ap("p", spec))
    assert found.path == "spec.rules[0].from[0].source.requestPrincipals"
    assert "so it denies nothing" in found.message
    found = one(ap("p", "  action: DENY\n  selector: {matchLabels: {app: payment}}"))
    assert found.path == "spec.action" and "Add rules" in found.message
    assert messages(ap("p", "  selector: {matchLabels: {app: payment}}")) == []  # deny all


# --- 5. CUSTOM ----------------------------------------------------------------------------


def test_custom_is_not_applied_and_said_once_at_the_action() -> None:
    text = ap(
        "p",
        "  action: CUSTOM\n  provider: {name: opa}\n  rules: [{to: [{operation: {paths: [/admin]}}]}]",
    )
    found = one(text)
    assert (found.path, found.severity) == ("spec.action", Severity.WARNING)
    assert "plait has no external authorizer (extensionProviders)" in found.message
    assert "use ALLOW or DENY policies instead" in found.message
    loaded = [m.path for m in vet(load_text(text, FILE)).messages]
    assert "spec.action" not in loaded  # the loader says nothing there: no duplicate
