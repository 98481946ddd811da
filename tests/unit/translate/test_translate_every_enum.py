"""Every value of every enum field the API accepts is carried through the model and the
translator (issue 15: `resolution: DYNAMIC_DNS` passed the API model and crashed the
snapshot). For each enum field, one accepted Istio corpus resource that sets it is
translated with each of the field's values, for a sidecar and a gateway; nothing may
raise, and the values plait refuses must be refused by the loader, not by a crash."""

from __future__ import annotations

import enum
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel
from translate_kit import REVIEWS_SERVICE, gateway, sidecar

from plait.analysis import vet
from plait.api import load_text
from plait.api.kinds import KINDS
from plait.model.snapshot import build_snapshot
from plait.translate.proxy import Translator

CORPUS = Path(__file__).parents[1] / "api" / "data" / "istio_corpus.yaml"


def enum_fields() -> dict[str, set[Any]]:
    """YAML field name → the values its Literal or enum type allows, over every model."""
    found: dict[str, set[Any]] = {}
    seen: set[type] = set()

    def visit(model: type[BaseModel]) -> None:
        if model in seen:
            return
        seen.add(model)
        for name, info in model.model_fields.items():
            key = info.alias or name
            stack: list[Any] = [info.annotation]
            while stack:
                tp = stack.pop()
                if typing.get_origin(tp) is typing.Literal:
                    found.setdefault(key, set()).update(typing.get_args(tp))
                elif isinstance(tp, type) and issubclass(tp, enum.Enum):
                    found.setdefault(key, set()).update(m.value for m in tp)
                elif isinstance(tp, type) and issubclass(tp, BaseModel):
                    visit(tp)
                else:
                    stack.extend(typing.get_args(tp))

    for info in KINDS.values():
        if info.model is not None:
            visit(info.model)
    return {k: v for k, v in found.items() if k not in ("apiVersion", "kind")}


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[tuple[Any, ...], str]]:
    """(path, key) of every scalar leaf of a mapping."""
    out: list[tuple[tuple[Any, ...], str]] = []
    if isinstance(value, dict):
        for k, v in value.items():
            if isinstance(v, dict | list):
                out += _paths(v, (*path, k))
            else:
                out.append(((*path, k), str(k)))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*path, i))
    return out


def _set(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(doc, dict):
        return {**doc, head: _set(doc[head], rest, value)}
    return [*doc[:head], _set(doc[head], rest, value), *doc[head + 1 :]]


def _translate(text: str) -> bool:
    """Load, vet, snapshot and translate for a sidecar and a gateway; False if refused."""
    view = vet(load_text(REVIEWS_SERVICE + text, "enum.yaml"))
    if len(view.resources) < 2:
        return False
    snapshot = build_snapshot(view.resources, (), 1, view.messages)
    translator = Translator(snapshot)
    for proxy in (sidecar("frontend-0"), gateway((80, 8080), (443, 8443))):
        translator.config_for(proxy)
    return True


def test_every_enum_value_translates() -> None:
    fields = enum_fields()
    docs = [c["doc"] for c in yaml.safe_load(CORPUS.read_text()) if "doc" in c]
    translated: dict[str, set[Any]] = {}
    for doc in docs:
        if not _translate(yaml.safe_dump(doc, sort_keys=False)):
            continue
        for path, key in _paths(doc.get("spec", {}), ("spec",)):
            where = f"{doc['kind']}:" + ".".join(str(p) for p in path if isinstance(p, str))
            if key not in fields:
                continue
            seen = translated.setdefault(where, set())
            for value in sorted(fields[key] - seen, key=str):
                if _translate(yaml.safe_dump(_set(doc, path, value), sort_keys=False)):
                    seen.add(value)
    assert len(translated) >= 12, translated  # most enum fields are exercised
    resolutions = translated["ServiceEntry:spec.resolution"]
    assert resolutions == {"NONE", "STATIC", "DNS", "DNS_ROUND_ROBIN", "DYNAMIC_DNS"}
    assert translated["DestinationRule:spec.trafficPolicy.tls.mode"] == {
        "DISABLE",
        "SIMPLE",
        "MUTUAL",
        "ISTIO_MUTUAL",
    }
    assert translated["PeerAuthentication:spec.mtls.mode"] == {
        "UNSET",
        "DISABLE",
        "PERMISSIVE",
        "STRICT",
    }
