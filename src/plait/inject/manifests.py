"""Injection into manifests (`plait kube-inject`, like `istioctl kube-inject`): every Pod
and every pod template of a multi-document YAML text gets `inject`; other documents pass
through unchanged. Pure (text in, text out)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import yaml

from plait.errors import InjectionError, ManifestError
from plait.inject.pod import inject
from plait.inject.settings import InjectSettings

TEMPLATE_KINDS = frozenset(
    {"Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job", "ReplicationController"}
)


def inject_manifests(text: str, settings: InjectSettings, source: str = "<stdin>") -> str:
    """The documents of `text` with their pods injected, as multi-document YAML."""
    try:
        docs = list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        raise ManifestError(f"{source}: not YAML: {exc}") from None
    out = []
    for index, doc in enumerate(docs):
        if doc is None:
            continue
        if not isinstance(doc, dict):
            raise ManifestError(f"{source}: document {index} is not a mapping")
        try:
            out.append(_document(doc, settings))
        except InjectionError as exc:
            raise InjectionError(f"{source}: document {index} ({_name(doc)}): {exc}") from None
    return yaml.safe_dump_all(out, sort_keys=False, explicit_start=False)


def _name(doc: dict[str, Any]) -> str:
    return f"{doc.get('kind', '?')}/{(doc.get('metadata') or {}).get('name', '?')}"


def _document(doc: dict[str, Any], settings: InjectSettings) -> dict[str, Any]:
    kind = doc.get("kind")
    if kind == "Pod":
        return inject(doc, settings)
    if kind == "List":
        return {**doc, "items": [_document(item, settings) for item in doc.get("items") or []]}
    for path in _template_paths(kind):
        template = _get(doc, path)
        if isinstance(template, dict):
            doc = _with_template(doc, path, _template(doc, template, settings))
    return doc


def _get(doc: object, path: tuple[str, ...]) -> object:
    for key in path:
        doc = doc.get(key) if isinstance(doc, dict) else None
    return doc


def _template_paths(kind: object) -> Iterator[tuple[str, ...]]:
    if kind in TEMPLATE_KINDS:
        yield ("spec", "template")
    elif kind == "CronJob":
        yield ("spec", "jobTemplate", "spec", "template")


def _template(
    owner: dict[str, Any], template: dict[str, Any], settings: InjectSettings
) -> dict[str, Any]:
    """Inject a pod template; its workload name (for the canonical-name label) is the
    owner's name, as the Pods the controller makes would show it."""
    raw = template.get("metadata") or {}
    if not isinstance(raw, dict):
        raise InjectionError("the pod template's metadata must be a mapping")
    meta = dict(raw)
    named = "name" in meta or "generateName" in meta
    if not named:
        meta["generateName"] = f"{(owner.get('metadata') or {}).get('name', 'unknown')}-"
    injected = inject({**template, "metadata": meta}, settings)
    if not named:
        injected["metadata"].pop("generateName", None)
    return injected


def _with_template(
    doc: dict[str, Any], path: tuple[str, ...], template: dict[str, Any]
) -> dict[str, Any]:
    if len(path) == 1:
        return {**doc, path[0]: template}
    return {**doc, path[0]: _with_template(doc.get(path[0]) or {}, path[1:], template)}
