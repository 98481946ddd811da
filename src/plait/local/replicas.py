"""One replica of a Deployment as `plait up` runs it: its proxy model, its app process
(with `PORT` and, in the default mode, `HTTP_PROXY` = its sidecar) and its sidecar agent;
in transparent mode all of it in its own pod, with no proxy variables (captured)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from plait.agent.sidecar import SidecarAgent
from plait.local.accesslogs import access_log_path, app_log_path
from plait.local.plan import ReplicaSpec
from plait.local.ports import free_port
from plait.local.process import ManagedProcess
from plait.model.proxy import Proxy, ProxyKind, Traffic, node_id
from plait.model.registry import PortMap, WorkloadInstance
from plait.podnet import Pod

HOST = "127.0.0.1"
AgentFor = Callable[[Proxy, str, Pod | None], SidecarAgent]
"""Makes the agent of (proxy, instance), its Envoy in the pod if one is given."""


@dataclass
class Replica:
    spec: ReplicaSpec
    proxy: Proxy
    app: ManagedProcess
    sidecar: SidecarAgent | None  # the agent (certificate, SDS, Envoy); None: no sidecar
    pod: Pod | None = None  # transparent mode: its network namespace
    registered: bool = False

    @property
    def address(self) -> str:
        """Where peers reach it: its pod IP, or loopback."""
        return str(self.pod.ip) if self.pod is not None else HOST

    @property
    def port(self) -> int:
        """The port peers connect to: the app's own in a pod (captured), else the sidecar's."""
        port = self.proxy.app_port if self.pod is not None else self.proxy.inbound_port
        return port or 0


@dataclass(frozen=True)
class ReplicaSite:
    """Where apps run: the mesh directory (their working directory) and the run dir."""

    root: Path
    run_dir: Path


def host_replica(spec: ReplicaSpec, site: ReplicaSite, agent_for: AgentFor) -> Replica:
    """A replica on loopback: the app reaches its sidecar as an HTTP proxy."""
    app_port, inbound, outbound = free_port(), free_port(), free_port()
    if not spec.sidecar:  # `sidecar.istio.io/inject: "false"`: reached at its own port
        inbound, outbound = app_port, 0
    proxy = replace(
        _proxy(spec, site, HOST, app_port),
        inbound_port=inbound,
        outbound_port=outbound or None,
    )
    env = app_env(spec, app_port, proxy_env(outbound) if spec.sidecar else {})
    app = ManagedProcess(
        spec.instance,
        spec.command,
        env=env,
        cwd=site.root,
        log_path=app_log_path(site.run_dir, spec.instance),
    )
    agent = agent_for(proxy, spec.instance, None) if spec.sidecar else None
    return Replica(spec, proxy, app, agent)


def pod_replica(spec: ReplicaSpec, pod: Pod, site: ReplicaSite, agent_for: AgentFor) -> Replica:
    """A replica in its pod: no proxy variables; its sidecar is captured (REDIRECT)."""
    app_port = free_port()
    proxy = replace(_proxy(spec, site, str(pod.ip), app_port), traffic=Traffic.CAPTURED)
    app = ManagedProcess(
        spec.instance,
        pod.exec_argv(spec.command),
        env=app_env(spec, app_port, {"POD_IP": str(pod.ip)}),
        cwd=site.root,
        log_path=app_log_path(site.run_dir, spec.instance),
    )
    agent = agent_for(proxy, spec.instance, pod) if spec.sidecar else None
    return Replica(spec, proxy, app, agent, pod)


def _proxy(spec: ReplicaSpec, site: ReplicaSite, address: str, app_port: int) -> Proxy:
    return Proxy(
        id=node_id(ProxyKind.SIDECAR, spec.instance, spec.namespace),
        kind=ProxyKind.SIDECAR,
        workload=spec.workload,
        namespace=spec.namespace,
        service_account=spec.service_account,
        labels=spec.labels,
        address=address,
        app_port=app_port,
        access_log=str(access_log_path(site.run_dir, spec.instance)) if spec.sidecar else None,
    )


def app_env(spec: ReplicaSpec, port: int, proxy_vars: dict[str, str]) -> dict[str, str]:
    return {
        **os.environ,
        **dict(spec.env),
        "PORT": str(port),
        **proxy_vars,
        "PLAIT_INSTANCE": spec.instance,
        "PLAIT_WORKLOAD": spec.workload,
        "PLAIT_NAMESPACE": spec.namespace,
        "PYTHONUNBUFFERED": "1",
    }


def proxy_env(outbound: int) -> dict[str, str]:
    """How an app reaches its sidecar: HTTP_PROXY, and PLAIT_OUTBOUND for clients that
    cannot use an HTTP proxy (gRPC: they dial it and name the service in :authority,
    docs/traffic/protocols.md)."""
    url = f"http://{HOST}:{outbound}"
    return {
        "HTTP_PROXY": url,
        "http_proxy": url,
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
        "PLAIT_OUTBOUND": f"{HOST}:{outbound}",
    }


def registry_instances(replicas: list[Replica]) -> list[WorkloadInstance]:
    """The replicas in the registry: ready, and not leaving."""
    return [
        WorkloadInstance(
            name=r.spec.instance,
            workload=r.spec.workload,
            namespace=r.spec.namespace,
            labels=r.spec.labels,
            service_account=r.spec.service_account,
            address=r.address,
            ports=PortMap.all_to(r.port),  # every service port
            sidecar=r.sidecar is not None,
        )
        for r in replicas
        if r.registered
    ]


def stops(replicas: list[Replica]) -> list[Any]:
    """Stopping replicas: their sidecars (which drain) and their apps, all at once."""
    return [
        *(r.sidecar.stop() for r in replicas if r.sidecar is not None),
        *(r.app.stop() for r in replicas),
    ]
