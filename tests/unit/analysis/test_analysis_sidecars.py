"""Sidecars: shadowed ones name the winner; egress hosts that import nothing are named;
Istio's webhook rules and what plait does not apply are reported when they load."""

from __future__ import annotations

from pathlib import Path

from analysis_kit import warnings_of

from plait.analysis import analyze, vet
from plait.api import load_path, load_text
from plait.api.loader import yaml_files
from plait.model.snapshot import build_snapshot


def sidecar(name: str, body: str) -> str:
    return f"""
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {{name: {name}}}
spec:
{body}"""


EGRESS = '  egress: [{hosts: ["./*"]}]\n'
SELECT = "  workloadSelector: {labels: {app: web}}\n"


def test_a_second_namespace_wide_sidecar_is_ignored_and_says_which_wins() -> None:
    [(name, path, message)] = warnings_of(sidecar("b", EGRESS) + sidecar("a", EGRESS))
    assert (name, path) == ("b", "metadata.name")
    assert "default/a (mesh.yaml[" in message and "ignored" in message


def test_two_sidecars_with_the_same_selector_are_reported_but_different_ones_are_not() -> None:
    assert [
        n for n, _, _ in warnings_of(sidecar("b", SELECT + EGRESS) + sidecar("a", SELECT + EGRESS))
    ] == ["b"]
    other = SELECT.replace("web", "api")
    assert warnings_of(sidecar("b", SELECT + EGRESS) + sidecar("a", other + EGRESS)) == []
    assert warnings_of(sidecar("b", SELECT + EGRESS) + sidecar("a", EGRESS)) == []


def test_an_exact_egress_host_that_nothing_declares_is_named() -> None:
    hosts = (
        '  egress: [{hosts: ["default/reviews.default.svc.cluster.local", '
        '"other/ratings.default.svc.cluster.local", "*/ratings.default.svc.cluster.local", '
        '"default/reviews", "./anything.example.com", "istio-system/*"]}]\n'
    )
    found = warnings_of(sidecar("s", hosts))
    assert [p for _, p, _ in found] == ["spec.egress[0].hosts[1]", "spec.egress[0].hosts[3]"]
    assert "in namespace other" in found[0][2] and "imports nothing" in found[0][2]


def test_webhook_rules_and_unapplied_fields_at_load() -> None:
    bad = load_text(sidecar("s", '  egress: [{hosts: ["reviews"]}]\n'), "s.yaml")
    assert [m.path for m in bad.errors] == ["spec.egress[0].hosts[0]"]
    assert "must be 'namespace/dnsName'" in bad.errors[0].message
    two = load_text(sidecar("s", '  egress: [{hosts: ["./*"]}, {hosts: ["./*"]}]\n'), "s.yaml")
    assert [m.path for m in two.errors] == ["spec"]
    assert "only one egress listener may leave out 'port'" in two.errors[0].message
    ingress = load_text(
        sidecar(
            "s",
            "  ingress: [{port: {number: 9080, protocol: HTTP, name: http}, "
            "defaultEndpoint: '127.0.0.1:8080'}]\n" + EGRESS,
        ),
        "s.yaml",
    )
    assert ingress.errors == ()
    [warning] = ingress.warnings
    assert warning.path == "spec.ingress" and "not applied" in warning.message


def test_a_selector_that_selects_no_workload_of_its_namespace_is_named() -> None:
    shop = Path(__file__).resolve().parents[3] / "examples" / "shop"
    config = [r for path in yaml_files(shop) for r in vet(load_path(path)).resources]

    def found(namespace: str, app: str) -> list[tuple[str, str]]:
        text = sidecar("s", f"  workloadSelector: {{labels: {{app: {app}}}}}\n" + EGRESS)
        extra = vet(
            load_text(text.replace("{name: s}", f"{{name: s, namespace: {namespace}}}"), "s.yaml")
        )
        everything = [*config, *extra.resources]
        messages = analyze(build_snapshot(everything, (), 1), everything)
        return [(m.path, m.message) for m in messages if m.file == "s.yaml"]

    assert found("default", "orders") == []
    [(path, message)] = found("default", "ordres")
    assert path == "spec.workloadSelector.labels" and "applies to nothing" in message
    [(path, _)] = found("other", "orders")  # a Sidecar selects in its own namespace only
    assert path == "spec.workloadSelector.labels"
