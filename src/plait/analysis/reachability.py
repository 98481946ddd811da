"""HTTP and TCP rules that can never be reached (istioctl analyze: IST0131).

Envoy tries routes in order and takes the first that matches, so in one VirtualService:

- every rule after a *catch-all* rule is dead. A catch-all is a rule without `match`, or
  with a match that constrains nothing but the path and matches every path (`uri`
  absent, `prefix: /` or `prefix: ""`, `regex: .*` or `regex: /.*`). A rule that delegates
  is never a catch-all: requests its delegate does not match go on to the next rule;
- a match whose conditions repeat an earlier match's exactly (ignoring `name`) is dead.

Rules of other VirtualServices merged on a gateway are not compared (see `conflicts`).
"""

from __future__ import annotations

from typing import Any

from plait.analysis.report import finding
from plait.api import Loaded, VirtualService
from plait.api.virtualservice import HTTPMatchRequest, HTTPRoute
from plait.errors import ConfigMessage

_CATCH_ALL_PATH = {"prefix": ("", "/"), "regex": (".*", "/.*")}
_NOT_CONDITIONS = {"name", "stat_prefix", "ignore_uri_case"}


def unreachable_rules(item: Loaded[VirtualService]) -> list[ConfigMessage]:
    """Warnings for the dead rules and matches of one VirtualService."""
    vs = item.resource
    out: list[ConfigMessage] = []
    catch_all: int | None = None
    seen: list[tuple[dict[str, Any], int, int]] = []
    for i, rule in enumerate(vs.spec.http):
        if catch_all is not None:
            out.append(
                finding(
                    item,
                    ["spec", "http", i],
                    f"this rule is never used: rule spec.http[{catch_all}] before it matches "
                    "every request. Move this rule above it, or give that rule a narrower "
                    "match",
                )
            )
            continue
        for j, match in enumerate(rule.match):
            conditions = match.model_dump(exclude=_NOT_CONDITIONS)
            earlier = next(((a, b) for c, a, b in seen if c == conditions), None)
            if earlier is not None:
                out.append(
                    finding(
                        item,
                        ["spec", "http", i, "match", j],
                        f"this match is never used: spec.http[{earlier[0]}].match[{earlier[1]}] "
                        "has the same conditions and comes first. Remove it or change it",
                    )
                )
            else:
                seen.append((conditions, i, j))
        if is_catch_all(rule):
            catch_all = i
    catch_all = None
    for i, tcp in enumerate(vs.spec.tcp):
        if catch_all is not None:
            out.append(
                finding(
                    item,
                    ["spec", "tcp", i],
                    f"this rule is never used: rule spec.tcp[{catch_all}] before it has no "
                    "'match' and takes every connection. Move this rule above it",
                )
            )
        elif not tcp.match:
            catch_all = i
    return out


def is_catch_all(rule: HTTPRoute) -> bool:
    """Every request that reaches this rule stops at it."""
    if rule.delegate is not None:
        return False
    return not rule.match or any(_matches_everything(m) for m in rule.match)


def _matches_everything(match: HTTPMatchRequest) -> bool:
    for name in type(match).model_fields:
        if name in _NOT_CONDITIONS or name == "uri":
            continue
        if getattr(match, name):  # None, empty maps and tuples constrain nothing
            return False
    uri = match.uri
    if uri is None:
        return True
    return any(getattr(uri, kind) in values for kind, values in _CATCH_ALL_PATH.items())
