"""The local workload registry: `DIR/.plait/workloads.json`, written by `plait up`.

`plait up` adds a replica once its app listens and its sidecar is ready, and removes it
when it stops; the control plane reads the file whenever it changes (`RegistrySource`).
A file that cannot be read or parsed never withdraws endpoints: the source keeps the last
good registry and reports the problem (shown by `plait status`) until the file is good. A file is the
contract (not an in-process call) so that the control plane can be restarted on its own
and find the same registry.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from plait.errors import RegistryError
from plait.model.labels import Labels
from plait.model.registry import PortMap, WorkloadInstance
from plait.sources import filewatch
from plait.sources.events import Emit, SourceError, WorkloadsChanged

STATE_DIR = ".plait"
WORKLOADS_FILE = "workloads.json"


def registry_path(root: Path) -> Path:
    return root / STATE_DIR / WORKLOADS_FILE


def _to_json(i: WorkloadInstance) -> dict[str, Any]:
    return {
        "name": i.name,
        "workload": i.workload,
        "namespace": i.namespace,
        "labels": i.labels.as_dict(),
        "serviceAccount": i.service_account,
        "address": i.address,
        "inboundPort": i.ports.every,
        "sidecar": i.sidecar,
    }


def write_registry(
    root: Path,
    instances: Sequence[WorkloadInstance],
    cluster_ips: Mapping[str, str] | None = None,
) -> None:
    """Atomically replace the registry (write a temp file, then rename); `cluster_ips`
    (hostname → IP) are transparent mode's service addresses."""
    path = registry_path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    data: dict[str, Any] = {"instances": [_to_json(i) for i in instances]}
    if cluster_ips:
        data["clusterIPs"] = dict(sorted(cluster_ips.items()))
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def load_cluster_ips(root: Path) -> tuple[tuple[str, str], ...]:
    """The registry's service cluster IPs as (hostname, IP) pairs; none if absent.
    Raises RegistryError like `load_registry`."""
    path = registry_path(root)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return ()
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise RegistryError(f"cannot read the workload registry {path}: {exc}") from exc
    raw = data.get("clusterIPs") or {} if isinstance(data, dict) else None
    if not isinstance(raw, dict):
        raise RegistryError(f"the workload registry {path}: clusterIPs is not a map")
    return tuple(sorted((str(k), str(v)) for k, v in raw.items()))


def read_registry(root: Path) -> list[WorkloadInstance]:
    """The registered instances; an absent or unreadable file means none (for readers
    that only annotate; the control plane keeps its last good registry: `load_registry`)."""
    try:
        return load_registry(root)
    except RegistryError:
        return []


def load_registry(root: Path) -> list[WorkloadInstance]:
    """The registered instances; an absent file means none. Raises RegistryError for a
    file that cannot be read or is not a complete registry."""
    path = registry_path(root)
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as exc:
        raise RegistryError(f"cannot read the workload registry {path}: {exc}") from exc
    try:
        data = json.loads(text)
        return [
            WorkloadInstance(
                name=d["name"],
                workload=d["workload"],
                namespace=d["namespace"],
                labels=Labels.of(d.get("labels") or {}),
                service_account=d.get("serviceAccount", "default"),
                address=d.get("address", "127.0.0.1"),
                ports=PortMap.all_to(int(d["inboundPort"])),  # local mode: one inbound port
                sidecar=bool(d.get("sidecar", True)),
            )
            for d in data.get("instances", [])
        ]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise RegistryError(
            f"the workload registry {path} is not valid ({type(exc).__name__}: {exc}); "
            "keeping the last good one"
        ) from exc


_Read = tuple[tuple[WorkloadInstance, ...], tuple[tuple[str, str], ...]]


class RegistrySource:
    """`DIR/.plait/workloads.json` as a source of `WorkloadsChanged` events."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def name(self) -> str:
        return "workloads"

    def wants(self, path: str) -> bool:
        p = Path(path)
        return p.name == WORKLOADS_FILE and p.parent.name == STATE_DIR

    async def _read(self, emit: Emit, last: _Read | None) -> _Read | None:
        """Emit the registry if it changed; a bad file is reported and `last` stays."""
        try:
            instances = tuple(await asyncio.to_thread(load_registry, self.root))
            ips = await asyncio.to_thread(load_cluster_ips, self.root)
        except RegistryError as exc:
            emit(SourceError(self.name, str(exc)))
            return last
        emit(SourceError(self.name, None))
        if last is None or (instances, ips) != last:
            emit(WorkloadsChanged(self.name, instances, ips))
        return instances, ips

    async def run(self, emit: Emit, ready: asyncio.Event) -> None:
        last = await self._read(emit, None)
        ready.set()
        async for _ in filewatch.changes(filewatch.one_below(self.root, STATE_DIR), self.wants):
            last = await self._read(emit, last)
