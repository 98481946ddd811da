"""The proxy in a Kubernetes pod (`plait proxy sidecar|router`): local mode's agent
(`SidecarAgent`: certificate, SDS, supervised Envoy) with a pod's identity and ports.
This module reads the settings (pure but for `pod_info`'s env mapping); `runner` runs it.

What differs from local mode, and why:

- Who it is comes from the pod (the injector's env: POD_NAME, POD_NAMESPACE,
  INSTANCE_IP, SERVICE_ACCOUNT from the downward API; ISTIO_META_WORKLOAD_NAME,
  ISTIO_METAJSON_LABELS, ISTIO_META_POD_PORTS computed at admission). The node id is
  `KIND~POD.NAMESPACE`, the name the control plane's PodAdmission looks the pod up by;
  the labels are the pod's, so it is admitted only as that pod.
- Its proof is the projected service-account token (audience plait-ca), re-read at each
  CA request as the kubelet rotates it; it trusts the CA with the mesh root the
  control plane publishes to every namespace (ConfigMap istio-ca-root-cert).
- A sidecar's traffic is CAPTURED (`plait capture apply` ran in the pod's init
  container): Envoy listens on 15001 (outbound) and 15006 (inbound) and reaches the app
  on 127.0.0.1 at its first TCP container port. A router (a gateway Deployment) serves
  each Gateway server port on the container port given for it.
- Fixed ports, as Istio's: admin on 127.0.0.1:15000 (loopback only: it can change
  Envoy); Envoy's own `/stats/prometheus` on 0.0.0.0:15090 (a static Envoy listener);
  the merged metrics on 0.0.0.0:15020 (`telemetry.exporter`: Envoy's stats with the
  istio families under Istio's names, the port the scrape annotation names); and the
  agent's `/healthz/ready` on 0.0.0.0:15021 (`agent.health`), which listens first and
  answers 503 until Envoy has its first clusters and listeners.
- The control plane's address is resolved once, by the agent, with the pod's resolver
  (the Service `plaitd`'s cluster IP, stable for the Service's life), and Envoy gets
  the IP; xDS is mTLS with SNI `plaitd.istio-system.svc` and the control plane's SPIFFE
  ID checked, whatever address it was reached at.

Failure model: a control-plane name that does not resolve (PodProxyError), no
certificate within `start_timeout_s` (CA unreachable, token refused:
WorkloadCertificateError) or an Envoy that will not start (EnvoyError) ends `run` with
that error and the command exits 4; the kubelet restarts the container. After that, certificate renewal retries on
its own and Envoy is restarted by its supervisor; SIGTERM drains Envoy and stops
everything (`SidecarAgent.stop`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plait.agent.identity import CaClientOptions
from plait.agent.sidecar import SidecarOptions
from plait.agent.supervisor import SupervisorOptions
from plait.errors import PodProxyError
from plait.inject.settings import (
    HEALTH_PORT,
    LABELS_ENV,
    MERGED_METRICS_PORT,
    METRICS_PORT,
    PORTS_ENV,
    WORKLOAD_ENV,
)
from plait.model.identity import SpiffeId, SpiffeIdError
from plait.model.labels import Labels
from plait.model.proxy import Proxy, ProxyKind, Traffic, node_id

ADMIN_PORT = 15000
RUN_DIR = Path("/var/run/plait")
"""The injected `plait-envoy` emptyDir: bootstrap, logs, the SDS socket."""


@dataclass(frozen=True)
class PodInfo:
    """The pod the proxy runs in, as its environment describes it."""

    name: str
    namespace: str
    ip: str
    service_account: str
    workload: str
    labels: Labels
    app_port: int | None  # the first TCP container port of the app containers


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise PodProxyError(f"environment variable {name} is not set (the injector sets it)")
    return value


def _json(env: Mapping[str, str], name: str, default: str) -> Any:
    raw = env.get(name, "").strip() or default
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise PodProxyError(f"environment variable {name} is not JSON: {exc}") from None


def _labels(env: Mapping[str, str]) -> Labels:
    doc = _json(env, LABELS_ENV, "{}")
    if not isinstance(doc, dict) or not all(isinstance(v, str) for v in doc.values()):
        raise PodProxyError(f"environment variable {LABELS_ENV} must map strings to strings")
    return Labels.of({str(k): v for k, v in doc.items()})


def _app_port(env: Mapping[str, str]) -> int | None:
    doc = _json(env, PORTS_ENV, "[]")
    if not isinstance(doc, list) or not all(isinstance(p, dict) for p in doc):
        raise PodProxyError(f"environment variable {PORTS_ENV} must be a list of ports")
    for port in doc:
        number = port.get("containerPort")
        if str(port.get("protocol") or "TCP").upper() == "TCP" and isinstance(number, int):
            if not 0 < number <= 65535:
                raise PodProxyError(f"{PORTS_ENV}: containerPort {number} is not a port")
            return number
    return None


def _workload(env: Mapping[str, str], pod: str) -> str:
    """ISTIO_META_WORKLOAD_NAME, else the pod name without a ReplicaSet's two suffixes."""
    given = env.get(WORKLOAD_ENV, "").strip()
    if given:
        return given
    parts = pod.rsplit("-", 2)
    return parts[0] if len(parts) == 3 else pod


def pod_info(env: Mapping[str, str]) -> PodInfo:
    """The pod from the injected environment; PodProxyError naming a missing variable."""
    name = _required(env, "POD_NAME")
    return PodInfo(
        name=name,
        namespace=_required(env, "POD_NAMESPACE"),
        ip=_required(env, "INSTANCE_IP"),
        service_account=env.get("SERVICE_ACCOUNT", "").strip() or "default",
        workload=_workload(env, name),
        labels=_labels(env),
        app_port=_app_port(env),
    )


@dataclass(frozen=True)
class PodProxyOptions:
    """The command line of `plait proxy sidecar|router` (the injector's args)."""

    kind: ProxyKind
    xds_address: str  # HOST:PORT
    ca_address: str  # https://HOST:PORT
    trust_domain: str
    token_file: Path
    ca_root_file: Path
    run_dir: Path = RUN_DIR
    admin_port: int = ADMIN_PORT
    health_port: int = HEALTH_PORT
    metrics_port: int = METRICS_PORT
    merged_metrics_port: int = MERGED_METRICS_PORT
    concurrency: int = 2
    gateway_ports: tuple[tuple[int, int], ...] = ()  # router: (Gateway port, container port)
    start_timeout_s: float = 30.0
    envoy_log_level: str = "warning"

    def xds_host_port(self) -> tuple[str, int]:
        host, sep, port = self.xds_address.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) <= 65535:
            raise PodProxyError(f"--xds-address {self.xds_address!r} is not HOST:PORT")
        return host.strip("[]"), int(port)


def pod_proxy(opts: PodProxyOptions, pod: PodInfo) -> Proxy:
    """The Proxy the control plane is told about (node metadata). Pure."""
    sidecar = opts.kind is ProxyKind.SIDECAR
    return Proxy(
        id=node_id(opts.kind, pod.name, pod.namespace),
        kind=opts.kind,
        workload=pod.workload,
        namespace=pod.namespace,
        service_account=pod.service_account,
        labels=pod.labels,
        address=pod.ip,
        app_port=pod.app_port if sidecar else None,
        gateway_ports=() if sidecar else opts.gateway_ports,
        traffic=Traffic.CAPTURED if sidecar else Traffic.EXPLICIT,
    )


def sidecar_options(opts: PodProxyOptions, pod: PodInfo, xds_ip: str) -> SidecarOptions:
    """The local agent's options for this pod's proxy (`xds_ip`: the resolved address)."""
    try:
        identity = SpiffeId(opts.trust_domain, pod.namespace, pod.service_account)
    except SpiffeIdError as exc:
        raise PodProxyError(f"the pod's identity: {exc}") from None
    _, xds_port = opts.xds_host_port()
    try:
        ca = CaClientOptions(
            ca_url=opts.ca_address,
            ca_root_file=opts.ca_root_file,
            token_file=opts.token_file,
            identity=identity,
            start_timeout_s=opts.start_timeout_s,
        )
    except ValueError as exc:
        raise PodProxyError(f"--ca-address: {exc}") from None
    return SidecarOptions(
        proxy=pod_proxy(opts, pod),
        run_dir=opts.run_dir,
        ca=ca,
        sds_socket=opts.run_dir / "sds" / "sds.sock",
        xds_host=xds_ip,
        xds_port=xds_port,
        name="envoy",
        admin_port=opts.admin_port,
        concurrency=opts.concurrency,
        supervisor=SupervisorOptions(log_level=opts.envoy_log_level, start_timeout_s=30.0),
        prometheus_port=opts.metrics_port,
    )
