"""Checks of one resource on its own: what Istio's webhook or Envoy would refuse.

These are the errors that keep a resource from being pushed (see `vet`): they depend on
nothing but the resource, so a file is checked once per edit.

- every regex Envoy compiles (StringMatch `regex` anywhere, `uriRegexRewrite.match`) must
  be one Envoy accepts (`regex.envoy_regex_problem`). In an HTTP match, `regex: "*"` on a
  header, query parameter, method, authority or scheme means "present" and is no regex;
- delegation (Istio's webhook): a delegate VirtualService (no `hosts`) cannot delegate
  again, and neither it nor a delegating rule may match with a regex;
- weights: more than 2^32-1 in total is refused by Envoy. A sum other than 100 is valid
  (Istio splits traffic in proportion) but is reported as a warning with the real shares.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from pydantic import BaseModel

from plait.analysis.istio import istio_problems
from plait.analysis.regex import envoy_regex_problem
from plait.analysis.report import finding
from plait.api import Loaded, VirtualService
from plait.api.common import StringMatch
from plait.api.virtualservice import (
    Destination,
    HTTPMatchRequest,
    HTTPRouteDestination,
    RegexRewrite,
    RouteDestination,
)
from plait.errors import ConfigMessage, Severity

Loc = list[str | int]
MAX_TOTAL_WEIGHT = 2**32 - 1
"""Envoy: "The sum of weights of all weighted clusters of route ... exceeds 4294967295"."""


def resource_problems(item: Loaded) -> list[ConfigMessage]:
    """Errors (and warnings) about one resource that need no other resource to decide."""
    out: list[ConfigMessage] = []
    resource = item.resource
    for loc, pattern in _regexes(resource, [], star_is_present=False):
        if isinstance(resource, VirtualService) and _in_delegation(resource, loc):
            text = (
                "Istio does not allow regex matches in delegation (a delegate VirtualService "
                "or a rule with 'delegate'); use exact or prefix"
            )
        else:
            problem = envoy_regex_problem(pattern)
            if problem is None:
                continue
            text = problem
        out.append(finding(item, loc, text, Severity.ERROR))
    if isinstance(resource, VirtualService):
        out += _nested_delegation(item, resource)
        out += _weights(item, resource)
    out += istio_problems(item)
    return out


def _regexes(value: Any, loc: Loc, *, star_is_present: bool) -> Iterator[tuple[Loc, str]]:
    """(path, pattern) of every regex below `value`."""
    if isinstance(value, StringMatch):
        if value.regex is not None and not (star_is_present and value.regex == "*"):
            yield [*loc, "regex"], value.regex
    elif isinstance(value, RegexRewrite):
        yield [*loc, "match"], value.match
    elif isinstance(value, BaseModel):
        for name, info in type(value).model_fields.items():
            present = isinstance(value, HTTPMatchRequest) and name != "uri"
            key = info.alias or name
            yield from _regexes(getattr(value, name), [*loc, key], star_is_present=present)
    elif isinstance(value, tuple):
        for i, sub in enumerate(value):
            yield from _regexes(sub, [*loc, i], star_is_present=star_is_present)
    elif isinstance(value, dict):
        for k, sub in value.items():
            yield from _regexes(sub, [*loc, str(k)], star_is_present=star_is_present)


def _in_delegation(vs: VirtualService, loc: Sequence[str | int]) -> bool:
    """A match regex in a delegate VirtualService or in a rule that delegates."""
    if len(loc) < 4 or list(loc[:2]) != ["spec", "http"] or loc[3] != "match":
        return False
    rule = vs.spec.http[int(loc[2])]
    return not vs.spec.hosts or rule.delegate is not None


def _nested_delegation(item: Loaded, vs: VirtualService) -> list[ConfigMessage]:
    if vs.spec.hosts:
        return []
    return [
        finding(
            item,
            ["spec", "http", i, "delegate"],
            "a delegate VirtualService (one without 'hosts') cannot delegate again (Istio "
            "allows one level); give this rule a 'route' instead",
            Severity.ERROR,
        )
        for i, rule in enumerate(vs.spec.http)
        if rule.delegate is not None
    ]


def describe(destination: Destination) -> str:
    """`host/subset:port`, as the weight messages name a destination."""
    out = destination.host
    if destination.subset:
        out += f"/{destination.subset}"
    if destination.port is not None:
        out += f":{destination.port.number}"
    return out


def _weights(item: Loaded, vs: VirtualService) -> list[ConfigMessage]:
    out: list[ConfigMessage] = []
    routes: list[tuple[Loc, Sequence[HTTPRouteDestination | RouteDestination]]] = []
    routes += [(["spec", "http", i, "route"], r.route) for i, r in enumerate(vs.spec.http)]
    routes += [(["spec", "tcp", i, "route"], r.route) for i, r in enumerate(vs.spec.tcp)]
    routes += [(["spec", "tls", i, "route"], r.route) for i, r in enumerate(vs.spec.tls)]
    for loc, route in routes:
        total = sum(d.weight or 0 for d in route)
        if len(route) == 1 and route[0].weight is not None and route[0].weight != 100:
            out.append(
                finding(
                    item,
                    [*loc, 0, "weight"],
                    f"a lone destination takes all traffic; its weight {route[0].weight} is "
                    "ignored (write 100 or leave it out)",
                )
            )
        if len(route) < 2 or total in (0, 100):
            continue  # a total of 0 is refused when the resource loads
        if total > MAX_TOTAL_WEIGHT:
            text = (
                f"the weights add up to {total}; Envoy refuses more than {MAX_TOTAL_WEIGHT}. "
                "Use percentages that add up to 100"
            )
            out.append(finding(item, loc, text, Severity.ERROR))
            continue
        shares = ", ".join(
            f"{describe(d.destination)} {100 * (d.weight or 0) / total:.4g}%" for d in route
        )
        out.append(
            finding(
                item,
                loc,
                f"the weights add up to {total}, not 100; traffic is split in proportion "
                f"({shares}). Make them add up to 100 so the YAML says what happens",
            )
        )
    return out
