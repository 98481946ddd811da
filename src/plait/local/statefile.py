"""`DIR/.plait/state.json`: what a running `plait up DIR` started, for status and down.

Written atomically by the `plait up` process at each phase change; read by `plait status`
and `plait down`. A state whose pid is no longer alive is stale and treated as no mesh.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from plait.errors import MeshStateError
from plait.sources.workloads import STATE_DIR

STATE_FILE = "state.json"


@dataclass
class ProxyEntry:
    name: str
    kind: str
    workload: str
    namespace: str
    serviceAccount: str  # noqa: N815 - the JSON contract's spelling
    labels: dict[str, str]
    admin: str
    inbound: str | None = None
    outbound: str | None = None
    app: str | None = None
    envoyLog: str = ""  # noqa: N815
    appLog: str | None = None  # noqa: N815
    identity: str | None = None  # the SPIFFE ID its certificate names
    accessLog: str | None = None  # noqa: N815 - its Envoy's JSON access log (local.accesslogs)
    podIP: str | None = None  # noqa: N815 - transparent mode: its pod's address
    metrics: str = ""  # Prometheus URL: Envoy's stats + istio_* (telemetry.exporter)

    def __post_init__(self) -> None:
        if not self.metrics:  # no exporter: Envoy's own stats
            self.metrics = f"http://{self.admin}/stats/prometheus"


@dataclass
class ServiceEntry:
    """A Kubernetes Service as `plait up` shows it: how apps call it and who serves it."""

    name: str
    namespace: str
    urls: list[str]  # e.g. http://orders:8080 (as apps in the same namespace call it)
    replicas: list[str]  # instance names behind it
    endpoints: list[str]  # their sidecars' inbound addresses
    clusterIP: str | None = None  # noqa: N815 - transparent mode: the name's virtual IP


@dataclass
class MeshState:
    pid: int
    phase: str  # starting | ready | failed | stopping
    root: str
    xds: str
    status_url: str
    gateway: str | None = None
    gateway_ports: dict[str, int] = field(default_factory=dict)
    proxies: list[ProxyEntry] = field(default_factory=list)
    services: list[ServiceEntry] = field(default_factory=list)
    error: str | None = None
    controlplane_log: str = ""
    ca: str | None = None  # the CA's HTTPS URL
    # a background task of the running mesh (replicas, tokens, directory) → its last failure
    problems: dict[str, str] = field(default_factory=dict)
    mode: str = "explicit"  # explicit (HTTP_PROXY) | transparent (pods, captured traffic)


def state_path(root: Path) -> Path:
    return root / STATE_DIR / STATE_FILE


def write_state(root: Path, state: MeshState) -> None:
    path = state_path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(state), indent=1))
    os.replace(tmp, path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_state(root: Path, *, require_alive: bool = True) -> MeshState:
    path = state_path(root)
    try:
        raw: dict[str, Any] = json.loads(path.read_text())
        proxies = [ProxyEntry(**p) for p in raw.pop("proxies", [])]
        services = [ServiceEntry(**s) for s in raw.pop("services", [])]
        state = MeshState(**raw, proxies=proxies, services=services)
    except FileNotFoundError as exc:
        raise MeshStateError(
            f"no mesh is running for {root} (no {path}); start one with `plait up {root}`"
        ) from exc
    except (ValueError, TypeError) as exc:
        raise MeshStateError(
            f"{path} is unreadable ({exc}); remove it and run `plait up {root}`"
        ) from exc
    if require_alive and not _alive(state.pid):
        raise MeshStateError(
            f"the mesh for {root} is not running (pid {state.pid} is gone); start it with `plait up {root}`"
        )
    return state


def clear_state(root: Path) -> None:
    state_path(root).unlink(missing_ok=True)
