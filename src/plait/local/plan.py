"""What `plait up` will start, derived from the loaded config (pure).

Each Deployment replica becomes one app process plus one sidecar; one ingress gateway
serves every Gateway. The first HTTP server port of the Gateways goes on the host's
gateway port; further server ports (HTTPS ones too) get free host ports (listed by
`plait status`).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

from plait.analysis.workloads import INJECT_ANNOTATION
from plait.api import KubeDeployment, Loaded, of_kind
from plait.model.labels import Labels
from plait.model.snapshot import MeshSnapshot
from plait.podnet.names import CLUSTER_FIRST, PodDns
from plait.translate.gateway import gateway_port_plans


@dataclass(frozen=True)
class ReplicaSpec:
    instance: str  # e.g. orders-v1-0
    workload: str  # the Deployment's name
    namespace: str
    labels: Labels
    service_account: str
    command: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()
    sidecar: bool = True  # False: `sidecar.istio.io/inject: "false"` on the pod template
    dns: PodDns = CLUSTER_FIRST  # transparent mode: its pod's resolv.conf


@dataclass(frozen=True)
class Plan:
    replicas: tuple[ReplicaSpec, ...]
    gateway_server_ports: tuple[int, ...] = field(default=())  # plain-text ports first
    gateway_tls_ports: frozenset[int] = frozenset()  # those of them that are HTTPS

    def first_plain_gateway_port(self) -> int | None:
        """The server port served on the host's gateway port (`--gateway-port`)."""
        plain = [p for p in self.gateway_server_ports if p not in self.gateway_tls_ports]
        return plain[0] if plain else None


def _command(raw: Sequence[str]) -> tuple[str, ...]:
    """`python`/`python3` run with plait's own interpreter, so the app sees plait's venv."""
    if raw and raw[0] in ("python", "python3"):
        return (sys.executable, *raw[1:])
    return tuple(raw)


def replicas_of(item: Loaded[KubeDeployment]) -> list[ReplicaSpec]:
    dep = item.resource
    template = dep.spec.template
    containers = template.spec.containers
    if not containers:
        return []
    c = containers[0]
    command = _command([*(c.command or []), *(c.args or [])])
    env = tuple((e.name, e.value or "") for e in (c.env or []))
    labels = Labels.of(template.metadata.labels if template.metadata else {})
    annotations = template.metadata.annotations if template.metadata else {}
    sidecar = annotations.get(INJECT_ANNOTATION, "true").lower() != "false"
    config = template.spec.dns_config
    dns = PodDns(
        template.spec.dns_policy,
        config.nameservers if config else (),
        config.searches if config else (),
        tuple((o.name, o.value) for o in config.options) if config else (),
    )
    return [
        ReplicaSpec(
            instance=f"{dep.metadata.name}-{i}",
            workload=dep.metadata.name,
            namespace=dep.metadata.namespace,
            labels=labels,
            service_account=template.spec.service_account_name or "default",
            command=command,
            env=env,
            sidecar=sidecar,
            dns=dns,
        )
        for i in range(dep.spec.replicas if dep.spec.replicas is not None else 1)
    ]


def make_plan(config: Sequence[Loaded], snapshot: MeshSnapshot) -> Plan:
    replicas = [r for item in of_kind(config, KubeDeployment) for r in replicas_of(item)]
    ports = gateway_port_plans(snapshot)
    return Plan(
        tuple(replicas),
        tuple(p.number for p in ports),
        frozenset(p.number for p in ports if p.tls),
    )
