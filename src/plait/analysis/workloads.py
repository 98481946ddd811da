"""The workloads the security checks reason about, read from the config (not the registry).

`plait analyze` runs without a registry, and the control plane analyses once per config
change, so workloads come from the Deployments in the config, as `plait up` reads them
(`local/plan.py`): the pod template's labels, the Deployment's namespace and the
template's `serviceAccountName`. Plus the ingress gateway `plait up` starts when there
are Gateways (`local/ingress.py`: istio-system, `istio=ingressgateway`).

A Deployment whose pod template says `sidecar.istio.io/inject: "false"` runs without a
sidecar (Istio's annotation): it speaks plain text to others, and no policy is enforced
on it. A workload's ports are its containers' ports and the target ports of the Services
that select it (named target ports resolved through the container port names); they are
the ports PeerAuthentication `portLevelMtls` and AuthorizationPolicy `to.ports` name.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from plait.api import KubeDeployment, Loaded, of_kind
from plait.model.identity import SpiffeId
from plait.model.labels import Labels
from plait.model.proxy import Proxy, ProxyKind, node_id
from plait.model.registry import Service, ServicePort
from plait.model.snapshot import MeshSnapshot

INJECT_ANNOTATION = "sidecar.istio.io/inject"

# The ingress gateway of `plait up` (local/ingress.py `gateway_proxy`; analysis may not
# import local/, which sits above it).
GATEWAY_NAME = "istio-ingressgateway"
GATEWAY_NAMESPACE = "istio-system"
GATEWAY_SERVICE_ACCOUNT = f"{GATEWAY_NAME}-service-account"
GATEWAY_LABELS = {"istio": "ingressgateway", "app": GATEWAY_NAME}


@dataclass(frozen=True)
class Workload:
    """One Deployment (or the ingress gateway) as the security checks see it.

    `proxy` is the shape `model.authz` selects on; `ports` is empty when no port is known
    (no container port, no Service), in which case port checks are skipped.
    """

    proxy: Proxy
    sidecar: bool
    ports: frozenset[int]
    port_names: tuple[tuple[str, int], ...] = ()  # container port name → number
    source: Loaded | None = None  # the Deployment; None for the gateway

    @property
    def name(self) -> str:
        return self.proxy.workload

    @property
    def namespace(self) -> str:
        return self.proxy.namespace

    @property
    def service_account(self) -> str:
        return self.proxy.service_account

    @property
    def is_gateway(self) -> bool:
        return self.proxy.kind is ProxyKind.GATEWAY

    def target_port(self, port: ServicePort) -> int | None:
        """The port of this workload a Service port sends to (None: a name it lacks)."""
        target = port.target_port if port.target_port is not None else port.port
        return dict(self.port_names).get(target) if isinstance(target, str) else target

    def label(self) -> str:
        """`namespace/name`, as messages name a workload."""
        return f"{self.namespace}/{self.name}"

    def principal(self, trust_domain: str) -> str:
        return SpiffeId(trust_domain, self.namespace, self.service_account).principal


def workloads_of(config: Sequence[Loaded], snapshot: MeshSnapshot) -> tuple[Workload, ...]:
    """The Deployments in `config`, then the ingress gateway if there are Gateways."""
    out = [_deployment(item, snapshot) for item in of_kind(config, KubeDeployment)]
    if snapshot.gateways:
        proxy = Proxy(
            id=node_id(ProxyKind.GATEWAY, GATEWAY_NAME, GATEWAY_NAMESPACE),
            kind=ProxyKind.GATEWAY,
            workload=GATEWAY_NAME,
            namespace=GATEWAY_NAMESPACE,
            service_account=GATEWAY_SERVICE_ACCOUNT,
            labels=Labels.of(GATEWAY_LABELS),
        )
        out.append(Workload(proxy, sidecar=True, ports=frozenset()))
    return tuple(out)


def _deployment(item: Loaded[KubeDeployment], snapshot: MeshSnapshot) -> Workload:
    dep = item.resource
    template = dep.spec.template
    ns = dep.metadata.namespace
    labels = Labels.of(template.metadata.labels)
    proxy = Proxy(
        id=node_id(ProxyKind.SIDECAR, dep.metadata.name, ns),
        kind=ProxyKind.SIDECAR,
        workload=dep.metadata.name,
        namespace=ns,
        service_account=template.spec.service_account_name,
        labels=labels,
    )
    inject = template.metadata.annotations.get(INJECT_ANNOTATION, "true")
    named = tuple(
        (p.name, p.container_port) for c in template.spec.containers for p in c.ports if p.name
    )
    workload = Workload(proxy, inject.lower() != "false", frozenset(), named, item)
    ports = {p.container_port for c in template.spec.containers for p in c.ports}
    for service in selecting(snapshot, workload):
        ports |= {t for t in map(workload.target_port, service.ports) if t is not None}
    return replace(workload, ports=frozenset(ports))


def selecting(snapshot: MeshSnapshot, workload: Workload) -> list[Service]:
    """The Kubernetes Services whose selector picks `workload` (through the snapshot's
    index: a scan of every Service for every Deployment was 0.9 s at 1,000 of each)."""
    return snapshot.service_selectors.selecting(workload.namespace, workload.proxy.labels)


def names(workloads: Iterable[Workload]) -> str:
    """`ns/a, ns/b` for a message."""
    return ", ".join(sorted({w.label() for w in workloads})) or "none"
