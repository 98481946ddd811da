"""Loading YAML: document indexes, files and trees, and every reported problem."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from plait.api import (
    DestinationRule,
    Gateway,
    KubeDeployment,
    KubeService,
    LoadResult,
    ServiceEntry,
    VirtualService,
    load_path,
    load_text,
)
from plait.api.loader import split_documents
from plait.errors import ConfigMessage, Severity

VS = """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: {name}
spec:
  hosts: [{name}]
  http:
  - route:
    - destination: {{host: {name}}}
"""

SERVICE = """apiVersion: v1
kind: Service
metadata:
  name: {name}
spec:
  selector: {{app: {name}}}
  ports:
  - {{name: http, port: 9080}}
"""


def only(result: LoadResult, severity: Severity = Severity.ERROR) -> ConfigMessage:
    found = [m for m in result.messages if m.severity is severity]
    assert len(found) == 1, found
    return found[0]


def where(m: ConfigMessage) -> tuple[str, int, str, str, str]:
    return (m.file, m.document, m.path, m.kind, m.name)


def test_documents_are_numbered_from_zero_counting_empty_ones() -> None:
    text = "\n---\n".join([VS.format(name="a"), "", "# only a comment", VS.format(name="b")])
    result = load_text(text, "mesh.yaml")
    assert result.messages == ()
    assert [(r.resource.metadata.name, r.source.document) for r in result.resources] == [
        ("a", 0),
        ("b", 3),
    ]
    assert {r.source.file for r in result.resources} == {"mesh.yaml"}
    assert len(set(result.resources)) == 2  # Loaded is hashable though models hold dicts


@pytest.mark.parametrize(
    "text",
    [
        "a: 1\n---\n",
        "---\n---\n",
        "# c\n---\na: 1",
        "a: 1\n---\n# c\n---\nb: 1\n",
        "\n\n",
        "--- \na: 1\n--- # x\nb: 2",
        "a: 1\n...\n---\nb: 2\n",
        "%YAML 1.1\n---\na: 1",
        "--- {a: 1}\n---\nb: 2",
    ],
)
def test_split_numbers_documents_as_pyyaml_does(text: str) -> None:
    ours = [yaml.safe_load(chunk) for _, chunk in split_documents(text)]
    assert ours == list(yaml.safe_load_all(text))


def test_every_kind_loads_to_its_model() -> None:
    text = "---\n".join(
        [
            SERVICE.format(name="reviews"),
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: reviews-v1}\nspec:\n"
            "  selector: {matchLabels: {app: reviews}}\n  template:\n"
            "    metadata: {labels: {app: reviews}}\n"
            "    spec: {containers: [{name: app, command: [python, app.py]}]}\n",
            VS.format(name="reviews"),
            "apiVersion: networking.istio.io/v1beta1\nkind: DestinationRule\n"
            "metadata: {name: reviews}\nspec: {host: reviews, subsets: [{name: v1}]}\n",
            "apiVersion: networking.istio.io/v1alpha3\nkind: Gateway\nmetadata: {name: gw}\n"
            "spec:\n  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ['*']}]\n",
            "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: ext}\n"
            "spec: {hosts: [httpbin.org], ports: [{number: 80, name: http}], resolution: DNS}\n",
        ]
    )
    result = load_text(text, "all.yaml")
    assert result.messages == ()
    types = [type(r.resource) for r in result.resources]
    assert types == [
        KubeService,
        KubeDeployment,
        VirtualService,
        DestinationRule,
        Gateway,
        ServiceEntry,
    ]
    assert [r.source.document for r in result.resources] == [0, 1, 2, 3, 4, 5]


def test_a_bad_document_beside_good_ones() -> None:
    bad = VS.format(name="bad").replace("destination: {host: bad}", "destination: {hots: bad}")
    text = "---\n".join([VS.format(name="a"), bad, VS.format(name="c")])
    result = load_text(text, "mixed.yaml")
    assert [r.resource.metadata.name for r in result.resources] == ["a", "c"]
    errors = result.errors
    assert [where(m) for m in errors] == [
        ("mixed.yaml", 1, "spec.http[0].route[0].destination.host", "VirtualService", "bad"),
        ("mixed.yaml", 1, "spec.http[0].route[0].destination.hots", "VirtualService", "bad"),
    ]
    assert errors[0].message == "'host' is required"
    assert errors[1].message == "unknown field 'hots'; did you mean 'host'?"


def test_yaml_syntax_error_names_the_line_and_spares_other_documents() -> None:
    text = (
        VS.format(name="a") + "---\nkind: VirtualService\nspec: [a, b\n---\n" + VS.format(name="c")
    )
    result = load_text(text, "broken.yaml")
    assert [r.resource.metadata.name for r in result.resources] == ["a", "c"]
    error = only(result)
    assert (error.file, error.document, error.path) == ("broken.yaml", 1, "")
    assert error.message.startswith("YAML syntax error at line 13,")
    assert "line 12" in error.message  # where the unclosed list starts


def test_tabs_and_repeated_keys_are_syntax_errors() -> None:
    tabs = only(load_text("a: 1\nb:\n\tc: 1\n", "t.yaml"))
    assert "line 3" in tabs.message and "tabs" in tabs.message
    repeated = only(load_text(VS.format(name="a").replace("spec:", "metadata: {}\nspec:"), "r"))
    assert repeated.message == (
        "YAML syntax error at line 5, column 1: key 'metadata' appears twice in one mapping"
    )


def test_unreadable_yaml_values_are_reported() -> None:
    result = load_text(VS.format(name="a") + "---\ncreated: 2024-13-45\n", "d.yaml")
    assert len(result.resources) == 1
    error = only(result)
    assert error.document == 1
    assert error.message == "YAML value that cannot be read: month must be in 1..12"


def test_a_number_as_a_map_key_is_named_in_the_path() -> None:
    text = (
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: db}\n"
        "spec: {hosts: [db.example], resolution: STATIC, ports: [{number: 80, name: http}],\n"
        "       endpoints: [{address: 10.0.0.1, ports: {80: 8080}}]}\n"
    )
    error = only(load_text(text, "se.yaml"))
    assert error.path == 'spec.endpoints[0].ports["80"]'
    assert error.message == 'in a key: expected a string, got the number 80; quote it: "80"'


@pytest.mark.parametrize(
    ("text", "path", "words"),
    [
        ("kind: VirtualService\nmetadata: {name: a}\n", "apiVersion", "'apiVersion' is required"),
        ("apiVersion: v1\nmetadata: {name: a}\n", "kind", "'kind' is required"),
        ("apiVersion: v1\nkind: [Service]\n", "kind", "'kind' must be a string"),
        ("- a\n- b\n", "", "expected a mapping with apiVersion, kind"),
    ],
)
def test_documents_without_api_version_or_kind(text: str, path: str, words: str) -> None:
    result = load_text("a: 1\n---\n" + text, "x.yaml")
    messages = [m for m in result.messages if m.document == 1]
    assert len(messages) == 1
    assert (messages[0].path, messages[0].severity) == (path, Severity.ERROR)
    assert words in messages[0].message


def test_unknown_kind_is_a_warning_and_ignored() -> None:
    result = load_text(
        "apiVersion: networking.istio.io/v1alpha3\nkind: EnvoyFilter\nmetadata: {name: f}\n",
        "f.yaml",
    )
    warning = only(result, Severity.WARNING)
    assert where(warning) == ("f.yaml", 0, "kind", "EnvoyFilter", "f")
    assert warning.message == "kind EnvoyFilter is not supported by plait; ignored"
    assert result.resources == () and result.errors == ()


def test_misspelt_kind_gets_a_suggestion() -> None:
    # An Istio group has a fixed set of kinds: a misspelt one is an error (issue 15)
    result = load_text(VS.format(name="a").replace("VirtualService", "Virtualservice"), "f")
    assert only(result, Severity.ERROR).message.endswith("(did you mean VirtualService?)")


def test_kind_of_another_api_group_is_not_plaits() -> None:
    result = load_text(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: g}\n", "g"
    )
    assert only(result, Severity.WARNING).message == (
        "kind Gateway of apiVersion gateway.networking.k8s.io/v1 is not supported by plait; ignored"
    )


def test_security_kinds_load_as_models() -> None:
    text = (
        "apiVersion: security.istio.io/v1beta1\nkind: PeerAuthentication\n"
        "metadata: {name: default, namespace: istio-system}\nspec: {mtls: {mode: STRICT}}\n"
    )
    result = load_text(text, "sec.yaml")
    assert result.messages == ()
    (loaded,) = result.resources
    assert loaded.resource.kind == "PeerAuthentication"
    assert loaded.resource.spec.mtls.mode == "STRICT"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("api_version", "kind", "accepted"),
    [
        (
            "networking.istio.io/v2",
            "VirtualService",
            "networking.istio.io/v1, networking.istio.io/v1beta1, networking.istio.io/v1alpha3",
        ),
        ("extensions/v1beta1", "Deployment", "apps/v1"),
        ("apps/v1", "Service", "v1"),
        (
            "networking.istio.io/v1",
            "AuthorizationPolicy",
            "security.istio.io/v1, security.istio.io/v1beta1",
        ),
    ],
)
def test_wrong_api_version_lists_the_accepted_ones(
    api_version: str, kind: str, accepted: str
) -> None:
    result = load_text(f"apiVersion: {api_version}\nkind: {kind}\nmetadata: {{name: a}}\n", "v")
    error = only(result)
    assert where(error) == ("v", 0, "apiVersion", kind, "a")
    assert error.message == (
        f"apiVersion '{api_version}' is not valid for {kind}; use one of {accepted}"
    )


def test_duplicates_are_an_error_on_the_second() -> None:
    text = "---\n".join([VS.format(name="a"), SERVICE.format(name="a"), VS.format(name="a")])
    result = load_text(text, "dup.yaml")
    assert [(type(r.resource), r.source.document) for r in result.resources] == [
        (VirtualService, 0),
        (KubeService, 1),
    ]
    error = only(result)
    assert where(error) == ("dup.yaml", 2, "metadata.name", "VirtualService", "a")
    assert "already defined in dup.yaml document 0" in error.message


def test_same_name_in_another_namespace_is_no_duplicate() -> None:
    other = VS.format(name="a").replace("name: a\n", "name: a\n  namespace: other\n", 1)
    result = load_text(VS.format(name="a") + "---\n" + other, "ns.yaml")
    assert result.messages == ()
    assert [r.resource.metadata.namespace for r in result.resources] == ["default", "other"]


def test_null_values_mean_unset() -> None:
    text = VS.format(name="a").replace("metadata:\n", "metadata:\n  labels:\n")
    result = load_text(text + "  gateways:\n", "n.yaml")
    assert result.messages == ()
    vs = result.resources[0].resource
    assert vs.metadata.labels == {} and isinstance(vs, VirtualService) and vs.spec.gateways == ()


def test_kube_typos_are_warned_about_and_real_fields_are_not() -> None:
    text = """apiVersion: apps/v1
kind: Deployment
metadata: {name: web, uid: abc, resourceVersion: "1"}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      serviceAcountName: web
      terminationGracePeriodSeconds: 5
      containers:
      - name: web
        imagePullPolicy: Always
        workdir: /srv
"""
    result = load_text(text, "d.yaml")
    assert len(result.resources) == 1
    assert [(m.path, m.message) for m in result.warnings] == [
        (
            "spec.template.spec.serviceAcountName",
            "unknown field 'serviceAcountName' is ignored; did you mean 'serviceAccountName'?",
        ),
        (
            "spec.template.spec.containers[0].workdir",
            "unknown field 'workdir' is ignored; did you mean 'workingDir'?",
        ),
    ]


def write(root: Path, rel: str, text: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_directory_tree_sorted_skipping_hidden(tmp_path: Path) -> None:
    write(tmp_path, "b.yaml", VS.format(name="b"))
    write(tmp_path, "a/z.yml", VS.format(name="az"))
    write(tmp_path, "a.yaml", VS.format(name="a") + "---\n" + SERVICE.format(name="a"))
    write(tmp_path, "notes.txt", "not yaml")
    write(tmp_path, ".plait/state.yaml", VS.format(name="hidden"))
    write(tmp_path, ".hidden.yaml", VS.format(name="hidden2"))
    write(tmp_path, "c/.cache/x.yaml", VS.format(name="hidden3"))
    result = load_path(tmp_path)
    assert result.messages == ()
    # Sorted by path components: the directory `a` sorts before the file `a.yaml`.
    assert [
        (
            Path(r.source.file).relative_to(tmp_path).as_posix(),
            r.source.document,
            r.resource.metadata.name,
        )
        for r in result.resources
    ] == [
        ("a/z.yml", 0, "az"),
        ("a.yaml", 0, "a"),
        ("a.yaml", 1, "a"),
        ("b.yaml", 0, "b"),
    ]


def test_duplicates_across_files(tmp_path: Path) -> None:
    write(tmp_path, "one.yaml", VS.format(name="a"))
    second = write(tmp_path, "two.yaml", "# leading comment\n---\n" + VS.format(name="a"))
    result = load_path(tmp_path)
    assert len(result.resources) == 1
    error = only(result)
    assert (error.file, error.document) == (str(second), 0)
    assert f"already defined in {tmp_path / 'one.yaml'} document 0" in error.message


def test_single_file_and_missing_path(tmp_path: Path) -> None:
    file = write(tmp_path, "one.yaml", VS.format(name="a"))
    assert [r.source for r in load_path(file).resources][0].file == str(file)
    missing = load_path(tmp_path / "nope")
    assert [(m.file, m.message) for m in missing.messages] == [
        (str(tmp_path / "nope"), "no such file or directory")
    ]


def test_unreadable_and_undecodable_files_are_reported(tmp_path: Path) -> None:
    write(tmp_path, "good.yaml", VS.format(name="a"))
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00bad")
    locked = write(tmp_path, "locked.yaml", VS.format(name="b"))
    locked.chmod(0)
    try:
        result = load_path(tmp_path)
    finally:
        locked.chmod(0o644)
    assert [r.resource.metadata.name for r in result.resources] == (
        ["a", "b"] if os.geteuid() == 0 else ["a"]
    )
    files = {Path(m.file).name: m.message for m in result.errors}
    assert files["binary.yaml"].startswith("cannot read this file:")
    if os.geteuid() != 0:
        assert files["locked.yaml"] == "cannot read this file: Permission denied"


def test_empty_directory_is_a_warning(tmp_path: Path) -> None:
    result = load_path(tmp_path)
    assert [(m.severity, m.message) for m in result.messages] == [
        (Severity.WARNING, "no *.yaml or *.yml files here")
    ]
