"""What the state file (`plait status`) says about each proxy and service of a run."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace

from plait.agent.sidecar import SidecarAgent
from plait.local.process import ManagedProcess
from plait.local.replicas import HOST, Replica
from plait.local.statefile import ProxyEntry, ServiceEntry
from plait.model.proxy import ProxyKind
from plait.model.registry import Resolution, Service
from plait.podnet import Pod
from plait.telemetry.exporter import MeshTelemetry


def proxy_entries(
    gateway: SidecarAgent | None, replicas: list[Replica], telemetry: MeshTelemetry
) -> list[ProxyEntry]:
    agents: list[tuple[SidecarAgent, ManagedProcess | None, Pod | None]] = []
    if gateway is not None:
        agents.append((gateway, None, None))
    agents += [(r.sidecar, r.app, r.pod) for r in replicas if r.sidecar is not None]
    return [
        proxy_entry(agent, app, telemetry.url(agent.envoy.name), pod) for agent, app, pod in agents
    ]


def service_entries(
    services: Iterable[Service], replicas: list[Replica], cluster_ips: Mapping[str, str]
) -> list[ServiceEntry]:
    """Every Kubernetes Service (not ServiceEntries), with its replicas and endpoints."""
    out = []
    for svc in sorted(services, key=lambda s: s.hostname):
        if svc.external or svc.resolution != Resolution.REGISTRY:
            continue
        reps = [
            r
            for r in replicas
            if r.spec.namespace == svc.namespace
            and svc.selector
            and r.spec.labels.matches(svc.selector)
        ]
        out.append(
            ServiceEntry(
                name=svc.name,
                namespace=svc.namespace,
                urls=[f"http://{svc.name}:{p.port}" for p in svc.ports if p.protocol.is_http],
                replicas=[r.spec.instance for r in reps],
                endpoints=[f"{r.address}:{r.port}" for r in reps],
                clusterIP=cluster_ips.get(svc.hostname),
            )
        )
    return out


def proxy_entry(
    agent: SidecarAgent, app: ManagedProcess | None, metrics: str | None, pod: Pod | None = None
) -> ProxyEntry:
    envoy = agent.envoy
    p = envoy.config.proxy
    sidecar = p.kind == ProxyKind.SIDECAR
    common = ProxyEntry(
        name=p.id,
        kind=p.kind.value,
        workload=p.workload,
        namespace=p.namespace,
        serviceAccount=p.service_account,
        labels=p.labels.as_dict(),
        admin=hostport(envoy.admin_url),
        envoyLog=str(envoy.log_path),
        appLog=str(app.log_path) if app is not None else None,
        accessLog=p.access_log,
        identity=agent.options.ca.identity.uri,
        metrics=metrics or "",
    )
    if pod is not None:  # captured: peers (and a plaintext client) try podIP:port
        at = f"{pod.ip}:{p.app_port}"
        return replace(common, inbound=at, outbound=None, app=at, podIP=str(pod.ip))
    return replace(
        common,
        inbound=f"{HOST}:{p.inbound_port}" if sidecar else None,
        outbound=f"{HOST}:{p.outbound_port}" if sidecar else None,
        app=f"{HOST}:{p.app_port}" if sidecar else None,
    )


def hostport(url: str | None) -> str:
    return (url or "").removeprefix("http://").rstrip("/")
