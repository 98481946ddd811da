"""Field values plait accepts but applies differently from Istio, or not yet, with a warning.

`applied.APPLIED` lists the *fields* the translator applies; a few fields are applied for
some of their values only. `CAVEATS` names those values: kind → (path suffix, value) →
message. A suffix matches at any depth (top-level policy, port level, subset).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from pydantic import BaseModel

from plait.api.result import Loaded
from plait.errors import ConfigMessage

CAVEATS: Mapping[str, Mapping[tuple[str, str], str]] = {
    "DestinationRule": {
        ("loadBalancer.simple", "PASSTHROUGH"): (
            "PASSTHROUGH sends each connection to the address the caller dialled; in local "
            "mode apps call service names through their sidecar's HTTP proxy, so there is no "
            "such address: plait load-balances as if 'simple' were unset (ROUND_ROBIN)"
        ),
    },
}


def value_warnings(loaded: Loaded) -> list[ConfigMessage]:
    """One warning per set field whose value is listed in `CAVEATS` for its kind."""
    table = CAVEATS.get(loaded.resource.kind, {})
    return [
        loaded.message(path, message)
        for path, value in set_fields(loaded.resource)
        for (suffix, bad), message in table.items()
        if value == bad and path.endswith("." + suffix)
    ]


def set_fields(model: BaseModel, path: str = "") -> Iterator[tuple[str, object]]:
    """(path, value) of every field the user set, depth first: a nested model or list of
    models is yielded itself, then its own fields."""
    for name, field in type(model).model_fields.items():
        if name not in model.model_fields_set:
            continue
        value = getattr(model, name)
        if value is None:
            continue
        sub = f"{path}.{field.alias or name}" if path else (field.alias or name)
        yield sub, value
        if isinstance(value, BaseModel):
            yield from set_fields(value, sub)
        elif isinstance(value, tuple):
            for i, item in enumerate(value):
                if isinstance(item, BaseModel):
                    yield from set_fields(item, f"{sub}[{i}]")
