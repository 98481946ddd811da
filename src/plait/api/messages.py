"""Turning pydantic's validation errors into ConfigMessages a user can act on.

A pydantic `loc` such as `('spec', 'http', 0, 'route', 1, 'weight')` becomes the YAML path
`spec.http[0].route[1].weight`; each error type gets a sentence that says what was
expected and, where it can, what to write instead (an unknown key gets the closest valid
key, found with difflib).
"""

from __future__ import annotations

import difflib
import re
import types
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from plait.errors import ConfigMessage, Severity

_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


@dataclass(frozen=True)
class Where:
    """The document a message is about."""

    file: str
    document: int
    kind: str = ""
    name: str = ""

    def message(self, path: str, text: str, severity: Severity = Severity.ERROR) -> ConfigMessage:
        return ConfigMessage(
            file=self.file,
            document=self.document,
            path=path,
            message=text,
            severity=severity,
            kind=self.kind,
            name=self.name,
        )


def format_path(loc: Sequence[str | int]) -> str:
    """YAML-style path: `spec.http[0].match[0].headers.x-user`."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _PLAIN_KEY.match(part):
            out += f".{part}" if out else part
        else:
            out += f'["{part}"]'
    return out


def validation_messages(
    error: ValidationError, model: type[BaseModel], where: Where
) -> list[ConfigMessage]:
    """One message per pydantic error, in pydantic's order."""
    out = []
    for detail in error.errors():
        if _spurious_too_short(detail):
            continue
        loc = list(detail["loc"])
        text = describe(detail, model)
        if "[key]" in loc:  # the error is about the map key just before the marker
            at = loc.index("[key]")
            loc = [*loc[: at - 1], str(loc[at - 1]), *loc[at + 1 :]]
            text = f"in a key: {text}"
        out.append(where.message(format_path(loc), text))
    return out


def _spurious_too_short(detail: ErrorDetails) -> bool:
    """pydantic also says "too short" when items failed; those items have their own errors."""
    if detail["type"] != "too_short":
        return False
    value, minimum = detail.get("input"), (detail.get("ctx") or {}).get("min_length", 0)
    return isinstance(value, list | tuple) and len(value) >= minimum


def describe(detail: ErrorDetails, model: type[BaseModel]) -> str:
    """A sentence for one pydantic error."""
    kind, value, ctx = detail["type"], detail.get("input"), detail.get("ctx") or {}
    loc = detail["loc"]
    if kind == "missing":
        return f"'{loc[-1]}' is required" if loc else "a value is required"
    if kind == "extra_forbidden":
        return _unknown_field(str(loc[-1]), field_names(model_at(model, loc[:-1])))
    if kind in ("value_error", "assertion_error") and "error" in ctx:
        return str(ctx["error"])
    if kind == "literal_error":
        return _bad_choice(value, re.findall(r"'([^']*)'", str(ctx.get("expected", ""))))
    simple = {
        "string_type": "a string",
        "bool_type": "true or false",
        "float_type": "a number",
        "tuple_type": "a list",
        "list_type": "a list",
        "dict_type": "a mapping (key: value)",
        "model_type": "a mapping (key: value)",
        "model_attributes_type": "a mapping (key: value)",
    }
    if kind in simple:
        return f"expected {simple[kind]}, got {yaml_type(value)}{_hint(kind, value)}"
    if kind.startswith("int_"):
        return f"expected a whole number, got {yaml_type(value)}{_hint('int_type', value)}"
    bounds = {
        "greater_than_equal": ("at least", "ge"),
        "greater_than": ("greater than", "gt"),
        "less_than_equal": ("at most", "le"),
        "less_than": ("less than", "lt"),
    }
    if kind in bounds:
        words, key = bounds[kind]
        return f"must be {words} {ctx.get(key)}, got {value}"
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "too_short":
        return f"needs at least {ctx.get('min_length')} item(s)"
    if kind == "too_long":
        return f"allows at most {ctx.get('max_length')} item(s)"
    return str(detail["msg"])


def yaml_type(value: Any) -> str:
    """How a YAML reader would name a value's type."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the string '{value}'"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return type(value).__name__


def _hint(kind: str, value: Any) -> str:
    if kind == "string_type" and isinstance(value, bool | int | float):
        text = str(value).lower() if isinstance(value, bool) else str(value)
        return f'; quote it: "{text}"'
    if kind == "int_type" and isinstance(value, str) and value.strip().isdigit():
        return "; remove the quotes"
    if kind == "bool_type" and isinstance(value, str) and value.lower() in ("true", "false"):
        return "; remove the quotes"
    if kind in ("tuple_type", "list_type") and not isinstance(value, list):
        return "; write each item on its own line starting with '- '"
    return ""


def _unknown_field(key: str, candidates: list[str]) -> str:
    close = closest(key, candidates)
    if close:
        return f"unknown field '{key}'; did you mean '{close}'?"
    if candidates:
        return f"unknown field '{key}'; expected one of: {', '.join(candidates)}"
    return f"unknown field '{key}'"


def _bad_choice(value: Any, choices: list[str]) -> str:
    listed = ", ".join(choices)
    if not isinstance(value, str):
        return f"expected one of {listed}, got {yaml_type(value)}"
    close = closest(value, choices)
    hint = f"; did you mean '{close}'?" if close else ""
    return f"'{value}' is not allowed here; use one of {listed}{hint}"


def closest(word: str, candidates: Sequence[str], cutoff: float = 0.6) -> str | None:
    """The candidate nearest to `word`, if any is near enough.

    difflib's ratio, case-insensitive, with a Winkler-style bonus for a common prefix
    (typos tend to keep the start of a word: 'retryPolcy' is nearer 'retries' than
    'corsPolicy').
    """
    best, best_score = None, cutoff
    low = word.lower()
    for candidate in candidates:
        other = candidate.lower()
        ratio = difflib.SequenceMatcher(None, low, other).ratio()
        prefix = 0
        while prefix < min(4, len(low), len(other)) and low[prefix] == other[prefix]:
            prefix += 1
        score = ratio + 0.1 * prefix * (1 - ratio)
        if score > best_score or (best is None and score == best_score):
            best, best_score = candidate, score
    return best


def field_names(model: type[BaseModel] | None) -> list[str]:
    """The YAML keys of a model, in declaration order."""
    if model is None:
        return []
    return [f.alias or name for name, f in model.model_fields.items()]


def model_at(root: type[BaseModel], loc: Sequence[str | int]) -> type[BaseModel] | None:
    """The model class that validates the value at `loc` below `root`, if it is a model."""
    current: Any = root
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            current = _field_type(current, str(part))
        elif get_origin(current) in (tuple, list) and isinstance(part, int):
            current = get_args(current)[0]
        elif get_origin(current) is dict:
            current = get_args(current)[1]
        else:
            return None
        if current is None:
            return None
    current = _unwrap(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _field_type(model: type[BaseModel], key: str) -> Any:
    for name, field in model.model_fields.items():
        if key in (name, field.alias):
            return field.annotation
    return None


def _unwrap(tp: Any) -> Any:
    """Strip Annotated and Optional: `Annotated[X | None, ...]` → `X`."""
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin in (Union, types.UnionType):
            arms = [a for a in get_args(tp) if a is not type(None)]
            if len(arms) != 1:
                return tp
            tp = arms[0]
        else:
            return tp
