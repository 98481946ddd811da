"""The local workload registry: `DIR/.plait/workloads.json`, written by `plait up`.

`plait up` adds a replica once its app listens and its sidecar is ready, and removes it
when it stops; the control plane reads the file whenever it changes. A file is the
contract (not an in-process call) so that the control plane can be restarted on its own
and find the same registry.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from plait.model.labels import Labels
from plait.model.registry import PortMap, WorkloadInstance

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


def write_registry(root: Path, instances: Sequence[WorkloadInstance]) -> None:
    """Atomically replace the registry (write a temp file, then rename)."""
    path = registry_path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"instances": [_to_json(i) for i in instances]}, indent=1))
    os.replace(tmp, path)


def read_registry(root: Path) -> list[WorkloadInstance]:
    """The registered instances; an absent or unreadable file means none."""
    try:
        data = json.loads(registry_path(root).read_text())
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
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return []
