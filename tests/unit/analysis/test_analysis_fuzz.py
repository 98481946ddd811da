"""`plait analyze` never crashes, whatever the YAML: generated resources of every kind.

Resources are generated from the models themselves (every field of every kind, by its
type: Literals, enums, numbers, strings drawn from values that stress the checks, nested
messages, lists and maps), with junk of the wrong type mixed in anywhere, and from
Istio's own validation cases (data/istio_corpus.yaml) with one value replaced. Several
documents share a small pool of names, so the cross-resource analyses (references,
conflicts, security) see resources that point at each other.

"Never crashes" means: the CLI exits 0 or 1 with JSON on stdout (no traceback), and no
message is the loader's "plait failed on this document" catch-all.
"""

from __future__ import annotations

import enum
import json
import os
import types
import typing
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from typer.testing import CliRunner

from plait.api.kinds import KINDS
from plait.cli.main import app

CORPUS = Path(__file__).parents[1] / "api" / "data" / "istio_corpus.yaml"
NAMES = ["reviews", "ratings", "a.example.com", "*.example.com", "*", "mesh", "gw", "v1"]
STRINGS = [
    *NAMES,
    "",
    "default",
    "foo/bar",
    "ns1/*",
    "./a.example.com",
    "~/x",
    "%",
    "%REQ(x)%",
    "100%%",
    "/a/{*}/b",
    "/{**}",
    "{**}/x/{*}",
    "[",
    "(?!x)",
    ".*",
    "::",
    "001:db8::",
    "10.0.0.0/8",
    "1.2.3.4",
    "unix:///run/a.sock",
    "unix://rel",
    "https://k.example/jwks",
    "http://",
    "spiffe://cluster.local/ns/a/sa/b",
    "1s",
    "0s",
    "-1s",
    "1.5ms",
    "t",
    "true",
    "GET",
    "x-h",
    ":authority",
    "host",
    "@request.auth.claims.group",
    "request.headers[x]",
    "experimental.envoy.filters.a.b[c]",
    "source.trustDomain",
    "{",
    "é\u2028",
]
GOOD = ["reviews", "a.example.com", "v1", "http", "GET", "/api", "1s", "x-h", "app", "10.0.0.1"]
"""Values most string fields accept, so that generated resources often load."""
GOOD_OR_ODD = st.integers(0, 2).flatmap(
    lambda i: st.sampled_from(STRINGS) if i == 0 else st.sampled_from(GOOD)
)
JUNK = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False)
    | st.sampled_from(STRINGS),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(STRINGS), inner, max_size=3)
    ),
    max_leaves=6,
)
"""A JSON-like value of any type, for fields that get the wrong one."""


def _alias(model: type[BaseModel], name: str) -> str:
    return model.model_fields[name].alias or name


def for_type(tp: Any, depth: int) -> st.SearchStrategy[Any]:
    """Values for a model field's annotation; one in twenty is junk of any type."""
    if depth >= 6:
        return JUNK
    typed = _typed(tp, depth)
    return st.integers(0, 19).flatmap(lambda i: JUNK if i == 0 else typed)


def _typed(tp: Any, depth: int) -> st.SearchStrategy[Any]:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Annotated:
        return _typed(args[0], depth)
    if origin is typing.Literal:
        return st.sampled_from(args)
    if origin in (typing.Union, types.UnionType):
        return st.one_of(*(_typed(a, depth) for a in args if a is not type(None)), st.none())
    if origin is tuple or origin is list:
        return st.lists(for_type(args[0], depth + 1), max_size=3)
    if origin is dict:
        key = st.one_of(st.sampled_from(STRINGS), st.integers(0, 70000))
        return st.dictionaries(key, for_type(args[1], depth + 1), max_size=3)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return model_dict(tp, depth + 1)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return st.sampled_from([m.value for m in tp])
    if tp is bool:
        return st.booleans()
    if tp is int:
        return st.one_of(st.integers(-5, 70000), st.sampled_from([0, 1, 65537, 2**32]))
    if tp is float:
        return st.floats(-1, 200, allow_nan=False)
    return GOOD_OR_ODD  # str and str-like (Duration)


def model_dict(
    model: type[BaseModel], depth: int = 0, required: tuple[str, ...] = ()
) -> st.SearchStrategy[dict[str, Any]]:
    """A mapping with a random subset of the model's fields (YAML names), and `required`."""
    fields = {
        _alias(model, name): for_type(info.annotation, depth)
        for name, info in model.model_fields.items()
    }
    must = {k: fields.pop(k) for k in required if k in fields}
    return st.fixed_dictionaries(must, optional=fields)


def document(kind: str) -> st.SearchStrategy[dict[str, Any]]:
    info = KINDS[kind]
    assert info.model is not None
    body = model_dict(info.model, required=("spec",))
    meta = st.fixed_dictionaries(
        {"name": st.sampled_from(["reviews", "gw", "p", "istio", "default", "Bad_Name"])},
        optional={
            "namespace": st.sampled_from(["default", "istio-system", "shop", "foo"]),
            "labels": st.dictionaries(
                st.sampled_from(["app", "version", ""]), st.sampled_from(NAMES), max_size=2
            ),
            "annotations": st.dictionaries(
                st.just("istio.io/dry-run"), st.sampled_from(["t", "yes", "false"]), max_size=1
            ),
        },
    )
    return st.tuples(body, st.sampled_from(info.versions), meta).map(
        lambda t: {**t[0], "apiVersion": t[1], "kind": kind, "metadata": t[2]}
    )


def _corpus_docs() -> list[Any]:
    out = []
    for case in yaml.safe_load(CORPUS.read_text()):
        doc = case.get("doc")
        out.append(doc if doc is not None else case["text"])
    return out


def _values_by_key(docs: list[Any]) -> dict[str, list[Any]]:
    """Every scalar value the corpus gives each key, and every Literal/enum value of the
    models' fields by YAML name: what a mutation swaps a leaf for."""
    found: dict[str, set[Any]] = {}

    def walk(value: Any, key: str) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, str(k))
        elif isinstance(value, list):
            for v in value:
                walk(v, key)
        elif value is not None:
            found.setdefault(key, set()).add(value)

    for doc in docs:
        walk(yaml.safe_load(doc) if isinstance(doc, str) else doc, "")
    for info in KINDS.values():
        if info.model is not None:
            _model_literals(info.model, found, set())
    return {k: sorted(v, key=repr) for k, v in found.items()}


def _model_literals(model: type[BaseModel], out: dict[str, set[Any]], seen: set[type]) -> None:
    if model in seen:
        return
    seen.add(model)
    for name, info in model.model_fields.items():
        stack: list[Any] = [info.annotation]
        while stack:
            tp = stack.pop()
            if typing.get_origin(tp) is typing.Literal:
                out.setdefault(_alias(model, name), set()).update(typing.get_args(tp))
            elif isinstance(tp, type) and issubclass(tp, enum.Enum):
                out.setdefault(_alias(model, name), set()).update(m.value for m in tp)
            elif isinstance(tp, type) and issubclass(tp, BaseModel):
                _model_literals(tp, out, seen)
            else:
                stack.extend(typing.get_args(tp))


def _mutate(doc: Any, path: list[int], pick: int, junk: Any, key: str = "") -> Any:
    """`doc` with one leaf of its spec (chosen by `path`) replaced: by another value the
    corpus or the models give that key (`pick` chooses; one time in five), or by `junk`."""
    if isinstance(doc, dict) and isinstance(doc.get("spec"), dict) and "kind" in doc:
        return {**doc, "spec": _mutate(doc["spec"], path, pick, junk)}
    if isinstance(doc, dict) and doc:
        k = list(doc)[path[0] % len(doc)] if path else next(iter(doc))
        return {**doc, k: _mutate(doc[k], path[1:], pick, junk, str(k))}
    if isinstance(doc, list) and doc:
        i = path[0] % len(doc) if path else 0
        return [*doc[:i], _mutate(doc[i], path[1:], pick, junk, key), *doc[i + 1 :]]
    choices = VALUES.get(key)
    if choices and pick % 5:
        return choices[pick % len(choices)]
    return junk


def _apply(doc: Any, changes: list[tuple[list[int], int]], junk: Any) -> Any:
    for path, pick in changes:
        doc = _mutate(doc, path, pick, junk)
    return doc


CORPUS_DOCS = _corpus_docs()
VALUES = _values_by_key(CORPUS_DOCS)
CHANGE = st.tuples(st.lists(st.integers(0, 50), min_size=1, max_size=8), st.integers(0, 999))
MUTATED = st.tuples(
    st.sampled_from([d for d in CORPUS_DOCS if not isinstance(d, str)]),
    st.lists(CHANGE, min_size=1, max_size=3),
    st.one_of(GOOD_OR_ODD, st.integers(-1, 70000), JUNK),
).map(lambda t: _apply(t[0], t[1], t[2]))
"""A corpus resource with one to three values swapped."""
ANY_DOC = st.one_of(
    st.one_of(*(document(kind) for kind, info in sorted(KINDS.items()) if info.model is not None)),
    st.sampled_from(CORPUS_DOCS),
    MUTATED,
    JUNK,
)


def _text(doc: Any, index: int) -> str:
    """YAML text of `doc`; a corpus resource gets a name of its own (`se-3`), so that
    several of one kind are not all refused as duplicates."""
    if isinstance(doc, str):
        return doc
    meta = doc.get("metadata") if isinstance(doc, dict) else None
    if isinstance(meta, dict) and isinstance(meta.get("name"), str) and index:
        doc = {**doc, "metadata": {**meta, "name": f"{meta['name']}-{index}"}}
    return yaml.safe_dump(doc, sort_keys=False)


def analyze(tmp: Path, docs: list[Any]) -> tuple[int, str]:
    texts = [_text(d, i) for i, d in enumerate(docs)]
    (tmp / "mesh.yaml").write_text("---\n".join(texts), encoding="utf-8")
    result = CliRunner().invoke(app, ["analyze", str(tmp), "-o", "json"])
    return result.exit_code, result.output


@settings(
    max_examples=int(os.environ.get("PLAIT_FUZZ_EXAMPLES", "200")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(docs=st.lists(ANY_DOC, min_size=1, max_size=4))
def test_analyze_never_crashes(tmp_path: Path, docs: list[Any]) -> None:
    code, out = analyze(tmp_path, docs)
    assert code in (0, 1) and out, out
    assert "Traceback" not in out
    report = json.loads(out)
    failed = [m for m in report["messages"] if "plait failed on this document" in m["message"]]
    assert failed == [], failed


def test_the_whole_corpus_in_one_directory(tmp_path: Path) -> None:
    """Every corpus resource at once (one file each), so cross-resource checks see them
    all together; deterministic, unlike the sampling above."""
    for i, doc in enumerate(CORPUS_DOCS):
        (tmp_path / f"{i:03}.yaml").write_text(_text(doc, i + 1), encoding="utf-8")
    result = CliRunner().invoke(app, ["analyze", str(tmp_path), "-o", "json"])
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert len(json.loads(result.output)["messages"]) > 100


def test_every_kind_plait_models_is_generated() -> None:
    modelled = {kind for kind, info in KINDS.items() if info.model is not None}
    assert modelled >= {"VirtualService", "AuthorizationPolicy", "Service", "RateLimit"}
    for kind in modelled:
        assert find(document(kind), lambda d: True)["kind"] == kind
