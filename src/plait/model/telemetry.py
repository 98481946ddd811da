"""Which Telemetry resources apply to a proxy, merged in Istio's order of precedence.

As in Istio (pilot/pkg/model/telemetry.go, applicableTelemetries): the mesh level is the
first Telemetry without a selector in the root namespace, the namespace level the first
without a selector in the proxy's namespace, the workload level the first in the proxy's
namespace whose `selector` or `targetRef(s)` picks it (Istio takes the oldest of several;
plait, without creation times, the first by name). They are merged in that order, each
level overriding what the one before set, field by field:

- tracing, per side (CLIENT: outbound and gateway listeners; SERVER: inbound): the
  provider, `randomSamplingPercentage` and `disableSpanReporting` are replaced when set;
  `customTags` are merged by tag name;
- access logging, per side: `providers`, `disabled` and `filter` are replaced when set;
- metrics: each override's `disabled` is recorded per (metric, side), a later level's
  override winning over an earlier one for the same pair.

What no Telemetry sets stays as the MeshConfig says (`MeshSettings`): MeshConfig gives the
defaults. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum

from plait.api import Loaded
from plait.api.telemetry import (
    AccessLogging,
    CustomTag,
    IstioMetric,
    Telemetry,
    Tracing,
    WorkloadMode,
)
from plait.model.authz import applies_to, is_targeted
from plait.model.proxy import Proxy
from plait.model.snapshot import MeshSnapshot


class Side(StrEnum):
    CLIENT = "CLIENT"  # outbound listeners and gateways
    SERVER = "SERVER"  # inbound listeners


def sides(mode: WorkloadMode | None) -> tuple[Side, ...]:
    if mode is None or mode is WorkloadMode.CLIENT_AND_SERVER:
        return (Side.CLIENT, Side.SERVER)
    return (Side(mode.value),)


@dataclass(frozen=True)
class TracingChoice:
    """What the Telemetries say about tracing on one side (None: MeshConfig's default)."""

    provider: str | None = None
    sampling: float | None = None
    disabled: bool | None = None
    custom_tags: Mapping[str, CustomTag] = field(default_factory=dict)


@dataclass(frozen=True)
class AccessLogChoice:
    """What the Telemetries say about access logging on one side."""

    providers: tuple[str, ...] | None = None  # None: the default (plait's file log)
    disabled: bool = False
    filter: str | None = None  # a CEL expression: log only requests for which it is true


@dataclass(frozen=True)
class ProxyTelemetry:
    tracing: Mapping[Side, TracingChoice] = field(default_factory=dict)
    access_logging: Mapping[Side, AccessLogChoice] = field(default_factory=dict)
    disabled_metrics: frozenset[tuple[IstioMetric, Side]] = frozenset()
    sources: tuple[str, ...] = ()  # namespace/name of the Telemetries merged, in order

    def tracing_on(self, side: Side) -> TracingChoice:
        return self.tracing.get(side, TracingChoice())

    def access_log_on(self, side: Side) -> AccessLogChoice:
        return self.access_logging.get(side, AccessLogChoice())

    def metric_disabled(self, metric: IstioMetric, side: Side) -> bool:
        return (metric, side) in self.disabled_metrics


NONE = ProxyTelemetry()
EVERY_METRIC = tuple(m for m in IstioMetric if m is not IstioMetric.ALL_METRICS)


def _wide(items: Iterable[Loaded[Telemetry]], namespace: str) -> Loaded[Telemetry] | None:
    return next(
        (i for i in items if i.resource.metadata.namespace == namespace and not is_targeted(i)),
        None,
    )


def applicable(snapshot: MeshSnapshot, proxy: Proxy) -> list[Loaded[Telemetry]]:
    """The mesh, namespace and workload Telemetries of `proxy`, least specific first."""
    items = snapshot.telemetries
    root = snapshot.mesh.root_namespace
    levels = [_wide(items, root)]
    if proxy.namespace != root:
        levels.append(_wide(items, proxy.namespace))
    levels.append(
        next(
            (
                i
                for i in items
                if i.resource.metadata.namespace == proxy.namespace
                and is_targeted(i)
                and applies_to(snapshot, i, proxy)
            ),
            None,
        )
    )
    return [level for level in levels if level is not None]


def _merge_tracing(old: TracingChoice, new: Tracing) -> TracingChoice:
    return TracingChoice(
        provider=new.providers[0].name if new.providers else old.provider,
        sampling=(
            new.random_sampling_percentage
            if new.random_sampling_percentage is not None
            else old.sampling
        ),
        disabled=(
            new.disable_span_reporting if new.disable_span_reporting is not None else old.disabled
        ),
        custom_tags={**old.custom_tags, **new.custom_tags},
    )


def _merge_log(old: AccessLogChoice, new: AccessLogging) -> AccessLogChoice:
    return replace(
        old,
        providers=tuple(p.name for p in new.providers) if new.providers else old.providers,
        disabled=new.disabled if new.disabled is not None else old.disabled,
        filter=new.filter.expression if new.filter is not None else old.filter,
    )


def merge(items: Iterable[Loaded[Telemetry]]) -> ProxyTelemetry:
    """Merge Telemetries given least specific first (see the module docstring)."""
    tracing: dict[Side, TracingChoice] = {}
    logging: dict[Side, AccessLogChoice] = {}
    metrics: dict[tuple[IstioMetric, Side], bool] = {}
    names: list[str] = []
    for item in items:
        spec = item.resource.spec
        names.append(f"{item.resource.metadata.namespace}/{item.resource.metadata.name}")
        for t in spec.tracing:
            for side in sides(t.match.mode if t.match else None):
                tracing[side] = _merge_tracing(tracing.get(side, TracingChoice()), t)
        for a in spec.access_logging:
            for side in sides(a.match.mode if a.match else None):
                logging[side] = _merge_log(logging.get(side, AccessLogChoice()), a)
        for m in spec.metrics:
            for o in m.overrides:
                if o.disabled is None:
                    continue
                match = o.match
                if match is not None and match.custom_metric is not None:
                    continue  # plait has no custom metrics
                metric = match.metric if match and match.metric else IstioMetric.ALL_METRICS
                chosen = EVERY_METRIC if metric is IstioMetric.ALL_METRICS else (metric,)
                for side in sides(match.mode if match else None):
                    for one in chosen:
                        metrics[(one, side)] = o.disabled
    return ProxyTelemetry(
        tracing=tracing,
        access_logging=logging,
        disabled_metrics=frozenset(k for k, off in metrics.items() if off),
        sources=tuple(names),
    )


def telemetry_for(snapshot: MeshSnapshot, proxy: Proxy) -> ProxyTelemetry:
    """The merged Telemetry settings that apply to `proxy`."""
    if not snapshot.telemetries:
        return NONE
    return merge(applicable(snapshot, proxy))


__all__ = [
    "AccessLogChoice",
    "ProxyTelemetry",
    "Side",
    "TracingChoice",
    "applicable",
    "merge",
    "telemetry_for",
]
