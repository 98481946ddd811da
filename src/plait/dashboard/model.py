"""The dashboard's JSON documents, from scrapes of the proxies (`telemetry.top`). No I/O.

- graph: nodes are workloads (`WORKLOAD.NAMESPACE`, the ingress gateway included), edges
  source workload → destination workload from the servers' reports (`reporter="destination"`,
  as `plait top`). The figures of an edge are those of the last window (`compute` run on
  scrapes whose destination service is replaced by the destination workload); an edge stays
  on the graph, idle, once its counter exists. `mtls` is the edge's
  `connection_security_policy`: `mutual_tls`, `none`, or `mixed` when both were seen.
- services: `plait top`'s per-service figures, each with a short history for sparklines.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from plait.telemetry.top import (
    Golden,
    Labels,
    ProxySamples,
    Scrape,
    Top,
    compute,
    golden_json,
)

HISTORY_POINTS = 60
_IDLE = Golden(requests=0.0, rps=0.0, success_rate=None, p50_ms=None, p99_ms=None)


def _relabel(labels: Labels) -> Labels:
    d = dict(labels)
    d["destination_service_name"] = d.get("destination_workload", "unknown")
    d["destination_service_namespace"] = d.get("destination_workload_namespace", "unknown")
    return tuple(sorted(d.items()))


def by_workload(scrape: Scrape) -> Scrape:
    """`scrape` with each series' destination service replaced by its destination workload
    (series that then coincide are summed), so `compute` aggregates per workload."""
    proxies = {}
    for name, samples in scrape.proxies.items():
        requests: dict[Labels, float] = defaultdict(float)
        buckets: dict[Labels, dict[float, float]] = defaultdict(lambda: defaultdict(float))
        for labels, value in samples.requests.items():
            requests[_relabel(labels)] += value
        for labels, series in samples.buckets.items():
            for bound, count in series.items():
                buckets[_relabel(labels)][bound] += count
        proxies[name] = ProxySamples(dict(requests), {k: dict(v) for k, v in buckets.items()})
    return Scrape(scrape.at, proxies)


def _node(workload: str, namespace: str) -> str:
    return f"{workload}.{namespace}"


def _seen_edges(scrape: Scrape) -> dict[tuple[str, str], tuple[float, set[str]]]:
    """(source node, destination node) → (requests so far, security policies seen)."""
    seen: dict[tuple[str, str], tuple[float, set[str]]] = {}
    for samples in scrape.proxies.values():
        for labels, value in samples.requests.items():
            d = dict(labels)
            if d.get("reporter") != "destination" or value <= 0:
                continue
            key = (
                _node(
                    d.get("source_workload", "unknown"),
                    d.get("source_workload_namespace", "unknown"),
                ),
                _node(
                    d.get("destination_workload", "unknown"),
                    d.get("destination_workload_namespace", "unknown"),
                ),
            )
            total, policies = seen.get(key, (0.0, set()))
            policies.add(d.get("connection_security_policy", "unknown"))
            seen[key] = (total + value, policies)
    return seen


def _mtls(policies: set[str]) -> str:
    if len(policies) == 1:
        return next(iter(policies))
    return "mixed"


@dataclass(frozen=True)
class Workload:
    """A workload the mesh runs (from the state file), shown even before it has traffic."""

    name: str
    namespace: str
    kind: str  # sidecar | gateway


def graph_json(prev: Scrape, cur: Scrape, workloads: Iterable[Workload] = ()) -> dict[str, Any]:
    """The `/api/graph` document (see the module docstring)."""
    top = compute(by_workload(prev), by_workload(cur))
    window = {
        (_node(e.source, e.source_namespace), _node(e.service, e.namespace)): e.golden
        for e in top.edges
    }
    inbound = {_node(r.service, r.namespace): r.golden for r in top.services}
    nodes: dict[str, dict[str, Any]] = {}
    for w in workloads:
        nodes[_node(w.name, w.namespace)] = {
            "workload": w.name,
            "namespace": w.namespace,
            "kind": w.kind,
        }
    edges = []
    for (source, dest), (total, policies) in sorted(_seen_edges(cur).items()):
        for node in (source, dest):
            name, _, namespace = node.rpartition(".")
            nodes.setdefault(node, {"workload": name, "namespace": namespace, "kind": "external"})
        figures = golden_json(window.get((source, dest), _IDLE))
        rate = figures["successRate"]
        edges.append(
            {
                "id": f"{source}->{dest}",
                "source": source,
                "destination": dest,
                "totalRequests": total,
                "rps": figures["rps"],
                "errorRate": None if rate is None else round(1 - rate, 4),
                "p99Ms": figures["p99Ms"],
                "mtls": _mtls(policies),
            }
        )
    return {
        "windowSeconds": round(top.window_s, 3),
        "nodes": [
            {"id": node, **info, "inbound": golden_json(inbound.get(node, _IDLE))}
            for node, info in sorted(nodes.items())
        ],
        "edges": edges,
    }


@dataclass
class ServiceHistory:
    """The last `HISTORY_POINTS` frames of each service's figures, for sparklines."""

    points: int = HISTORY_POINTS
    _rows: dict[tuple[str, str], deque[dict[str, Any]]] = field(default_factory=dict)
    _latest: Mapping[tuple[str, str], dict[str, Any]] = field(default_factory=dict)

    def add(self, top: Top, at: float) -> None:
        latest = {}
        for r in top.services:
            figures = {"at": round(at, 3), **golden_json(r.golden)}
            self._rows.setdefault((r.service, r.namespace), deque(maxlen=self.points)).append(
                figures
            )
            latest[(r.service, r.namespace)] = figures
        self._latest = latest

    def to_json(self) -> dict[str, Any]:
        """The `/api/services` document: services busiest first, each with its history."""
        rows = [
            {"service": k[0], "namespace": k[1], **self._latest[k], "history": list(self._rows[k])}
            for k in self._latest
        ]
        rows.sort(key=lambda r: (-r["rps"], r["namespace"], r["service"]))
        return {"services": rows}
