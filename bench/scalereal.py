"""Real Envoys in the scale benchmark (`bench.scale`, `--real-envoys N`, keys `real_*`).

N plait sidecars (default 3), each under its agent as `plait up` runs them
(`bench.envoyclients`: token, key, certificate from the mesh CA, SDS on a Unix socket,
Envoy with plait's bootstrap, so delta ADS), join the 1,000 simulated proxies on the same
`AdsServer`, over mutual TLS as the simulated proxies are (plain text with the worker's
`--plaintext-xds`); the CA they get their workload certificates from runs in the
worker, as in the control plane (the worker owns it and hands its URL to `start`). Real Envoy r is a second
replica of `svc-(k-1)`, where `svc-k` is the service the scoped phase edits in its
repetition r+1 (`scoped.edited_service`): each of the first N scoped edits has one real Envoy
among its dependents and the others outside.

What is measured, from the server's side as for the simulated proxies: a real Envoy's
ACK time for a change is its stream's latest ACK (`ProxyStatus.types[...].last_ack`, wall
clock) of the xDS types whose ACKed version the change moved, minus the start of the
change; for a reconnect, the latest ACK of the new stream minus the new server's start.
What is checked, from each Envoy's admin API (`/config_dump`), after every change with a
deadline, failing the run if it does not hold: the VirtualService weight of svc-0000's v1
subset, the presence or absence of the endpoint the change added or removed, the names
of the active clusters against what the server holds for the proxy (after each (re)sync),
and for a scoped edit the new header value at its dependents, while the other real
Envoys were sent nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from bench import scoped
from bench.meshgen import SERVICE_PORT, SyntheticMesh, instance_of, sidecar
from bench.procs import PROXY_ENVIRON, memory_kib, spawn_python, terminate, tree_cpu_seconds
from bench.simclient import proxies_to_json
from plait.local.ports import free_port
from plait.model.labels import Labels
from plait.model.proxy import Proxy
from plait.model.registry import WorkloadInstance
from plait.translate.typeurls import CLUSTER
from plait.xds.server import AdsServer

CHECK_TIMEOUT_S = 15.0
START_TIMEOUT_S = 120.0
VS_SERVICE = 0  # the service whose VirtualService the scale bench edits (meshgen)
ENDPOINT_SERVICE = 1  # the service whose replicas the endpoint change adds and removes

# (sent, acked, last ACK) per xDS type of one stream
Mark = dict[str, tuple[str | None, str | None, float | None]]


def service_of(r: int, services: int) -> int:
    """The service real Envoy `r` is a replica of: a dependent of scoped edit r+1."""
    return (scoped.edited_service(r + 1, services) - 1) % services


def proxies(n: int, services: int) -> list[Proxy]:
    """The real Envoys' proxies (free ports: their listeners bind them)."""
    out = []
    for r in range(n):
        svc = SyntheticMesh.name(service_of(r, services))
        labels = Labels.of({"app": svc, "version": "v1"})
        out.append(sidecar(f"{svc}-real{r}", svc, labels, (free_port(), free_port(), free_port())))
    return out


def _fqdn(i: int) -> str:
    return scoped.fqdn(i)


def _walk(doc: Any) -> Iterator[dict[str, Any]]:
    if isinstance(doc, dict):
        yield doc
        for v in doc.values():
            yield from _walk(v)
    elif isinstance(doc, list):
        for v in doc:
            yield from _walk(v)


def _envoys(pid: int) -> list[int]:
    """The Envoy processes among the descendants of `pid`."""
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            for child in (task / "children").read_text().split():
                with contextlib.suppress(OSError):
                    if Path(f"/proc/{child}/comm").read_text().strip() == "envoy":
                        out.append(int(child))
                out += _envoys(int(child))
    return out


@dataclass(frozen=True)
class Check:
    """What a real Envoy's config must show: `query` (the `/config_dump` parameters) and
    `holds(dump)` → None when it holds, else what is wrong."""

    what: str
    query: dict[str, str]
    holds: Callable[[dict[str, Any]], str | None]


def vs_weight(weight: int) -> Check:
    """svc-0000's route splits `weight` to subset v1."""
    cluster = f"outbound|{SERVICE_PORT}|v1|{_fqdn(VS_SERVICE)}"

    def holds(dump: dict[str, Any]) -> str | None:
        seen = [d.get("weight") for d in _walk(dump) if d.get("name") == cluster and "weight" in d]
        return None if seen and all(w == weight for w in seen) else f"v1 weights {seen}"

    return Check(f"{cluster} weight {weight}", {"resource": "dynamic_route_configs"}, holds)


def endpoint(port: int, present: bool) -> Check:
    """svc-0001's endpoint set has (or has not) 127.0.0.1:`port`."""
    host = _fqdn(ENDPOINT_SERVICE)

    def holds(dump: dict[str, Any]) -> str | None:
        sets = [d for d in _walk(dump) if host in str(d.get("cluster_name", ""))]
        ports = sorted({a["port_value"] for s in sets for a in _walk(s) if "port_value" in a})
        if not sets:
            return "no endpoint set"
        return None if (port in ports) == present else f"endpoint ports {ports}"

    query = {"include_eds": "", "resource": "dynamic_endpoint_configs"}
    return Check(f"{host} endpoint :{port} {'present' if present else 'absent'}", query, holds)


def header(service: int, value: int) -> Check:
    """The scoped VirtualService of `svc-service` sets `x-edit: value`."""
    host = _fqdn(service)

    def holds(dump: dict[str, Any]) -> str | None:
        hosts = [v for v in _walk(dump) if f"{host}:{SERVICE_PORT}" in v.get("domains", [])]
        values = [d.get("value") for v in hosts for d in _walk(v) if d.get("key") == "x-edit"]
        return None if values and all(v == str(value) for v in values) else f"x-edit {values}"

    return Check(f"{host} x-edit {value}", {"resource": "dynamic_route_configs"}, holds)


def clusters(expected: set[str]) -> Check:
    """The active dynamic clusters are exactly `expected`."""

    def holds(dump: dict[str, Any]) -> str | None:
        names = {d["name"] for d in _walk(dump) if isinstance(d.get("name"), str)}
        names = {n for n in names if "|" in n or n in expected}
        if names == expected:
            return None
        return f"{len(expected - names)} missing, {len(names - expected)} extra"

    query = {"resource": "dynamic_active_clusters", "mask": "cluster.name"}
    return Check(f"{len(expected)} clusters", query, holds)


def _stats(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)
    return {
        "p50": ordered[len(ordered) // 2],
        "p99": ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
        "max": ordered[-1],
        "n": len(ordered),
    }


class RealEnvoys:
    """The real Envoys of one scale run: started once, measured and checked per change."""

    def __init__(self, n: int, services: int, run_dir: Path) -> None:
        self.proxies = proxies(n, services)
        self.ids = [p.id for p in self.proxies]
        self.service_of = {p.id: service_of(r, services) for r, p in enumerate(self.proxies)}
        self.run_dir = run_dir
        self.admin: dict[str, str] = {}
        self.times: dict[str, list[float]] = {}  # kind → ACK seconds, every Envoy, every rep
        self.detail: dict[str, Any] = {"checks": 0}
        self._proc: asyncio.subprocess.Process | None = None
        self._http: aiohttp.ClientSession | None = None
        self._cpu: list[float] = []

    @property
    def instances(self) -> list[WorkloadInstance]:
        """Their registry entries (each is a ready replica of its service)."""
        return [instance_of(p) for p in self.proxies]

    # -- processes -------------------------------------------------------------------------

    async def start(self, port: int, ca_url: str, xds_tls: bool) -> None:
        """The agents and Envoys in a child process (`envoyclients`), their tokens from the
        issuer in `run_dir/state` and their certificates from the CA at `ca_url`."""
        if not self.proxies:
            return
        path = self.run_dir / "real-proxies.json"
        path.write_text(proxies_to_json(self.proxies))
        self._proc = await spawn_python(
            "bench.envoyclients",
            str(port),
            str(path),
            str(self.run_dir),
            ca_url,
            *([] if xds_tls else ["--plaintext-xds"]),
            environ=PROXY_ENVIRON,
        )
        assert self._proc.stdout is not None
        async with asyncio.timeout(START_TIMEOUT_S):
            while (line := (await self._proc.stdout.readline()).decode()) != "ready\n":
                if not line:
                    raise RuntimeError(f"real Envoys: exited with {await self._proc.wait()}")
                if line.startswith("admin "):
                    _, node, url = line.split()
                    self.admin[node] = url
        self._http = aiohttp.ClientSession()

    async def stop(self) -> None:
        if self._proc is not None:
            self.detail["envoy_peak_rss_mib"] = [
                memory_kib(pid).get("VmHWM", 0) / 1024 for pid in _envoys(self._proc.pid)
            ]
        if self._http is not None:
            await self._http.close()
        if self._proc is not None:
            await terminate(self._proc, grace=15)

    def cpu(self) -> float:
        """CPU seconds of the Envoys, their agents and their process so far."""
        return tree_cpu_seconds(self._proc.pid) if self._proc is not None else 0.0

    # -- measuring -------------------------------------------------------------------------

    def mark(self, server: AdsServer) -> dict[str, Mark]:
        """Each real Envoy's stream as the server sees it now."""
        out: dict[str, Mark] = {}
        ids = set(self.ids)
        for s in server.statuses():
            if s.proxy.id in ids and s.connected:
                out[s.proxy.id] = {
                    t: (
                        ts.sent_version,
                        ts.acked_version,
                        ts.last_ack.timestamp() if ts.last_ack is not None else None,
                    )
                    for t, ts in s.types.items()
                }
        return out

    def acked_since(
        self, before: dict[str, Mark], after: dict[str, Mark], t0: float
    ) -> dict[str, float | None]:
        """Per Envoy: seconds from `t0` (wall clock) to its latest ACK of a type whose
        ACKed version moved; None if none moved."""
        out: dict[str, float | None] = {}
        for node in self.ids:
            old, new = before.get(node, {}), after.get(node, {})
            moved = [
                at for t, (_, acked, at) in new.items() if at and acked != old.get(t, (0, 0))[1]
            ]
            out[node] = max(moved) - t0 if moved else None
        return out

    async def check(self, server: AdsServer, checks: list[Check], ids: list[str]) -> None:
        """Wait (with a deadline) until every Envoy of `ids` shows every check; raise if not."""
        for node in ids:
            for c in checks:
                await self._until(node, c)

    def cluster_check(self, server: AdsServer, node: str) -> Check:
        config = server.config_of(node)
        assert config is not None, node
        return clusters(set(config.by_type.get(CLUSTER, {})))

    async def _until(self, node: str, c: Check) -> None:
        assert self._http is not None
        deadline = time.monotonic() + CHECK_TIMEOUT_S
        while True:
            url = f"{self.admin[node]}/config_dump"
            async with self._http.get(url, params=c.query) as resp:
                body = await resp.text()
            wrong = f"HTTP {resp.status}: {body[:200]}" if resp.status != 200 else None
            if wrong is None:
                wrong = c.holds(json.loads(body))
            self.detail["checks"] += 1
            if wrong is None:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"real Envoy {node} diverged: expected {c.what}, has {wrong}")
            await asyncio.sleep(0.1)

    # -- the phases ------------------------------------------------------------------------

    async def synced(self, server: AdsServer, phase: str, since: float | None = None) -> None:
        """After a (re)sync: each Envoy's time to sync (from `since`, wall clock, or from its
        stream's start) and its clusters checked against the server's."""
        if not self.ids:
            return
        after = self.mark(server)
        starts = {s.proxy.id: s.connected_since.timestamp() for s in server.statuses()}
        seconds = []
        for node in self.ids:
            acks = [at for _, _, at in after.get(node, {}).values() if at]
            if not acks:
                raise RuntimeError(f"{phase}: real Envoy {node} has ACKed nothing")
            seconds.append(max(acks) - (since if since is not None else starts[node]))
        self.detail[f"{phase}_synced_s"] = seconds
        if since is not None:  # how much of it was the Envoys' own reconnect backoff
            self.detail[f"{phase}_connected_s"] = [starts[n] - since for n in self.ids]
        for node in self.ids:
            await self._until(node, self.cluster_check(server, node))

    async def changed(
        self,
        server: AdsServer,
        kind: str,
        before: dict[str, Mark],
        t0: float,
        checks: list[Check],
        cpu0: float,
        record: bool,
    ) -> None:
        """After a change every Envoy must have ACKed: note its time, check its config."""
        if not self.ids:
            return
        cpu = self.cpu() - cpu0
        acked = self.acked_since(before, self.mark(server), t0)
        missing = [n for n, s in acked.items() if s is None]
        if missing:
            raise RuntimeError(f"{kind}: real Envoys {missing} ACKed nothing new")
        if record:
            self.times.setdefault(kind, []).extend(s for s in acked.values() if s is not None)
            self.detail.setdefault(f"{kind}_cpu_s", []).append(cpu)
        await self.check(server, checks, self.ids)

    async def scoped_edit(
        self,
        server: AdsServer,
        k: int,
        value: int,
        before: dict[str, Mark],
        t0: float,
        needed: set[str],
        record: bool,
    ) -> None:
        """A scoped edit of svc-k: its real dependents ACK it and hold the new header; the
        other real Envoys were sent nothing."""
        if not self.ids:
            return
        after = self.mark(server)
        acked = self.acked_since(before, after, t0)
        dependents = [n for n in self.ids if n in needed]
        missing = [n for n in dependents if acked[n] is None]
        if missing:
            raise RuntimeError(f"scoped edit of svc-{k}: real dependents {missing} ACKed nothing")
        sent = {n: {t: m[0] for t, m in after.get(n, {}).items()} for n in self.ids}
        old = {n: {t: m[0] for t, m in before.get(n, {}).items()} for n in self.ids}
        touched = [n for n in self.ids if n not in needed and sent[n] != old[n]]
        if record:
            self.times.setdefault("scoped_edit", []).extend(
                s for n in dependents if (s := acked[n]) is not None
            )
            self.detail.setdefault("scoped_dependents", []).append(len(dependents))
            worst = self.detail.get("scoped_non_dependent_pushes", 0)
            self.detail["scoped_non_dependent_pushes"] = max(worst, len(touched))
        await self.check(server, [header(k, value)], dependents)

    def result(self) -> dict[str, Any]:
        """The `real_*` keys (None where there is nothing to say)."""

        def ms(kind: str, q: str) -> float | None:
            stats = _stats(self.times.get(kind, []))
            return 1e3 * stats[q] if stats else None

        reconnect = self.detail.get("reconnect_synced_s")
        scoped_acks = self.times.get("scoped_edit", [])
        return {
            "real_envoys": len(self.ids),
            "real_vs_edit_ack_p99_ms": ms("vs_edit", "p99"),
            "real_vs_edit_ack_max_ms": ms("vs_edit", "max"),
            "real_endpoint_ack_p99_ms": ms("endpoint", "p99"),
            "real_endpoint_ack_max_ms": ms("endpoint", "max"),
            "real_reconnect_synced_s": max(reconnect) if reconnect else None,
            "real_scoped_edit_ack_max_ms": 1e3 * max(scoped_acks) if scoped_acks else None,
            "real_scoped_non_dependent_pushes": self.detail.get("scoped_non_dependent_pushes"),
        }

    def details(self) -> dict[str, Any]:
        return {**self.detail, **{f"{k}_ack_s": _stats(v) for k, v in self.times.items()}}
