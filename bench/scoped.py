"""The scale benchmark's Sidecar-scoped phase (`bench.scale`, keys `scoped_*`).

Every service `svc-i` gets a VirtualService, and the replicas of `svc-i` a Sidecar
(`workloadSelector: {app: svc-i}`) importing ten services, `svc-(i+1)` … `svc-(i+10)`
(modulo the mesh). An edit of `svc-k`'s VirtualService then concerns the proxies of
`svc-(k-1)` … `svc-(k-10)`, its dependents, and no one else. The phase runs on a fresh
control plane (the proxies reconnect to it, as after a restart) whose observer counts
pushes and convergences, and measures per edit:

* how long each dependent takes to ACK the edit, from the start of the change (before the
  snapshot is built): `scoped_edit_ack_p99_ms` is the p99 over every dependent of every
  repetition;
* which proxies were sent anything: a proxy whose sent version of every xDS type is
  unchanged after the edit received nothing. `scoped_untouched_proxies` is the smallest
  number, over the repetitions, of non-dependents that received nothing (the goal: all of
  them, `proxies - 10`); `scoped_non_dependent_pushes` the largest number of
  non-dependents that received something (the goal: 0); `scoped_pushes_per_edit` the
  responses the server wrote per edit, all proxies together;
* in `detail`: `scoped_build_s` and `scoped_translate_s` per edit (the snapshot build,
  `MeshState.publish`), and `scoped_built`, what the last edit's translation built
  (`config_affected`: the proxies it translated again on the config fast path).
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, Protocol

from bench.meshgen import NAMESPACE, SnapshotBuilder, SyntheticMesh
from bench.procs import memory_kib
from plait.controlplane.state import MeshState
from plait.xds.auth import ServerTls
from plait.xds.server import AdsServer

if TYPE_CHECKING:
    from bench.scalereal import RealEnvoys

SCOPE_SIZE = 10
SCOPED_DIR = "scoped"


class Counting:
    """An `XdsObserver` that notes ACK times (monotonic) and counts responses written."""

    def __init__(self) -> None:
        self.at: list[float] = []
        self.pushes = 0

    def pushed(self, type_name: str, size: int, seconds: float | None) -> None:
        self.pushes += 1

    def converged(self, seconds: float) -> None:
        self.at.append(time.monotonic())


class Host(Protocol):
    """What the phase needs of the scale worker."""

    builder: SnapshotBuilder
    server: AdsServer
    tls: ServerTls | None
    detail: dict[str, Any]

    async def _synced(self, server: AdsServer, generation: int, what: str) -> None: ...


def fqdn(i: int) -> str:
    return f"{SyntheticMesh.name(i)}.{NAMESPACE}.svc.cluster.local"


def sidecar_yaml(i: int, services: int) -> str:
    hosts = "".join(f"    - ./{fqdn((i + d) % services)}\n" for d in range(1, SCOPE_SIZE + 1))
    return f"""apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {{name: {SyntheticMesh.name(i)}, namespace: {NAMESPACE}}}
spec:
  workloadSelector: {{labels: {{app: {SyntheticMesh.name(i)}}}}}
  egress:
  - hosts:
{hosts}"""


def vs_yaml(i: int, value: int) -> str:
    """A VirtualService for `svc-i` that sets a request header (`value` is the edit)."""
    name = SyntheticMesh.name(i)
    return f"""apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: {name}, namespace: {NAMESPACE}}}
spec:
  hosts: [{name}]
  http:
  - headers: {{request: {{set: {{x-edit: "{value}"}}}}}}
    route: [{{destination: {{host: {name}}}}}]
"""


def files(services: int) -> dict[str, str]:
    """One Sidecar and one VirtualService per service, each in its own file."""
    out = {f"{SCOPED_DIR}/sidecar-{i:04d}.yaml": sidecar_yaml(i, services) for i in range(services)}
    out |= {f"{SCOPED_DIR}/vs-{i:04d}.yaml": vs_yaml(i, 0) for i in range(services)}
    return out


def edited_service(i: int, services: int) -> int:
    """The service whose VirtualService repetition `i` edits (0 is the warm-up)."""
    return (37 * i + 5) % services


def dependents(k: int, services: int, proxies_of: Callable[[int], list[str]]) -> set[str]:
    """The proxies whose Sidecar imports `svc-k`."""
    return {p for d in range(1, SCOPE_SIZE + 1) for p in proxies_of((k - d) % services)}


def _sent(server: AdsServer) -> dict[str, tuple[str | None, ...]]:
    return {
        s.proxy.id: tuple(t.sent_version for _, t in sorted(s.types.items()))
        for s in server.statuses()
    }


async def run(
    host: Host,
    port: int,
    services: int,
    proxy_ids: list[str],
    reps: int,
    real: RealEnvoys | None = None,
) -> dict[str, Any]:
    """The phase (see the module docstring); the worker's server is replaced by this one.
    `real`: real Envoys among the proxies, measured and checked too (`bench.scalereal`)."""
    by_service: dict[int, list[str]] = {}
    for j, proxy_id in enumerate(proxy_ids):
        by_service.setdefault(j % services, []).append(proxy_id)
    for proxy_id, service in (real.service_of if real is not None else {}).items():
        by_service.setdefault(service, []).append(proxy_id)
    await host.server.stop(0.5)
    t = time.perf_counter()
    snapshot = host.builder.update_many(files(services))
    state = MeshState(snapshot)
    host.detail["scoped_initial_build_s"] = time.perf_counter() - t
    observer = Counting()
    server = host.server = AdsServer(state, observer=observer)  # the old one is garbage now
    gc.collect()
    host.detail["rss_before_scoped_mib"] = memory_kib()["VmRSS"] / 1024
    await server.start("127.0.0.1", port, tls=host.tls)
    t = time.perf_counter()
    await host._synced(server, state.generation, "scoped initial sync")
    host.detail["scoped_initial_sync_s"] = time.perf_counter() - t
    host.detail["rss_scoped_synced_mib"] = memory_kib()["VmRSS"] / 1024
    if real is not None:
        await real.synced(server, "scoped")
    latencies: list[float] = []
    untouched: list[int] = []
    touched_others: list[int] = []
    pushes: list[int] = []
    for i in range(reps + 1):
        k = edited_service(i, services)
        needed = dependents(k, services, lambda s: by_service.get(s, []))
        before = _sent(server)
        real_before = real.mark(server) if real is not None else {}
        observer.at.clear()
        observer.pushes = 0
        t0, t0_wall = time.monotonic(), time.time()
        edited = host.builder.update(f"{SCOPED_DIR}/vs-{k:04d}.yaml", vs_yaml(k, i + 1))
        built = time.monotonic()
        gen = await state.publish(edited)
        translated = time.monotonic()
        await host._synced(server, gen, f"scoped edit {i}")
        after = _sent(server)
        if real is not None:
            await real.scoped_edit(server, k, i + 1, real_before, t0_wall, needed, i > 0)
        if i == 0:
            continue  # the warm-up
        changed = {p for p, v in after.items() if before.get(p) != v}
        others = set(after) - needed
        latencies += [at - t0 for at in observer.at]
        untouched.append(len(others - changed))
        touched_others.append(len(changed & others))
        pushes.append(observer.pushes)
        host.detail.setdefault("scoped_build_s", []).append(built - t0)
        host.detail.setdefault("scoped_translate_s", []).append(translated - built)
        host.detail["scoped_built"] = asdict(state.built) | {
            "endpoint_hosts": sorted(state.built.endpoint_hosts)
        }
        host.detail.setdefault("scoped_dependents_reached", []).append(len(changed & needed))
    host.detail["scoped_edit"] = {
        "p50": sorted(latencies)[len(latencies) // 2] if latencies else None,
        "max": max(latencies, default=None),
        "n": len(latencies),
    }
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] if ordered else None
    return {
        "scoped_edit_ack_p99_ms": 1e3 * p99 if p99 is not None else None,
        "scoped_untouched_proxies": min(untouched),
        "scoped_non_dependent_pushes": max(touched_others),
        "scoped_pushes_per_edit": max(pushes),
    }
