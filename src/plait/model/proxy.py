"""A proxy as the control plane sees it, and its round trip through Envoy node metadata.

The agent writes `to_node_metadata(proxy)` into the bootstrap; the xDS server reads it
back with `from_node_metadata` from the first DiscoveryRequest of a stream. Keys follow
Istio's node metadata names where Istio has one (NAMESPACE, LABELS, WORKLOAD_NAME,
SERVICE_ACCOUNT) so that tooling that reads Istio bootstraps recognises them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from plait.model.labels import Labels


class ProxyKind(StrEnum):
    SIDECAR = "sidecar"
    GATEWAY = "gateway"


class Traffic(StrEnum):
    """How traffic reaches a proxy: the platform decides, translation follows.

    EXPLICIT (local mode): the app is given the sidecar's outbound port as its HTTP
    proxy, and peers connect to the sidecar's inbound port; Istio calls this interception
    mode NONE. CAPTURED (transparent mode, Kubernetes): iptables redirects the pod's TCP
    to the proxy, Istio's REDIRECT. Only EXPLICIT is translated today; a CAPTURED proxy
    is representable (node metadata `INTERCEPTION_MODE: REDIRECT`) so that the capture
    work plugs its listeners in on this field.
    """

    EXPLICIT = "NONE"
    CAPTURED = "REDIRECT"


@dataclass(frozen=True)
class Proxy:
    """One Envoy: a workload replica's sidecar, or the ingress gateway.

    Ports are host ports on `address` (local mode runs everything on loopback):
    `inbound_port` is where other sidecars reach this one, `app_port` is where the app
    listens, `outbound_port` is the HTTP proxy the app is given (`traffic` says how
    traffic arrives: explicitly, as here, or captured). A gateway maps each Gateway
    server port to a host port in `gateway_ports`. `access_log` is the file its Envoy
    writes one JSON line per request to (None: no access log).
    """

    id: str
    kind: ProxyKind
    workload: str
    namespace: str = "default"
    service_account: str = "default"
    labels: Labels = field(default_factory=Labels)
    address: str = "127.0.0.1"
    inbound_port: int | None = None
    app_port: int | None = None
    outbound_port: int | None = None
    gateway_ports: tuple[tuple[int, int], ...] = ()
    access_log: str | None = None
    traffic: Traffic = Traffic.EXPLICIT

    def host_port_for_gateway_port(self, port: int) -> int | None:
        return dict(self.gateway_ports).get(port)


def node_id(kind: ProxyKind, instance: str, namespace: str) -> str:
    """Envoy node id, shaped like Istio's `sidecar~IP~POD.NAMESPACE~DOMAIN` without the IP."""
    return f"{kind.value}~{instance}.{namespace}"


def to_node_metadata(proxy: Proxy) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "PLAIT_PROXY_KIND": proxy.kind.value,
        "WORKLOAD_NAME": proxy.workload,
        "NAMESPACE": proxy.namespace,
        "SERVICE_ACCOUNT": proxy.service_account,
        "LABELS": proxy.labels.as_dict(),
        "INSTANCE_IP": proxy.address,
    }
    if proxy.inbound_port is not None:
        meta["INBOUND_PORT"] = str(proxy.inbound_port)
    if proxy.app_port is not None:
        meta["APP_PORT"] = str(proxy.app_port)
    if proxy.outbound_port is not None:
        meta["OUTBOUND_PORT"] = str(proxy.outbound_port)
    if proxy.gateway_ports:
        meta["GATEWAY_PORTS"] = {str(k): str(v) for k, v in proxy.gateway_ports}
    if proxy.access_log is not None:
        meta["PLAIT_ACCESS_LOG"] = proxy.access_log
    if proxy.traffic is not Traffic.EXPLICIT:  # absent means explicit (older agents)
        meta["INTERCEPTION_MODE"] = proxy.traffic.value
    return meta


class NodeMetadataError(ValueError):
    """The node metadata in a DiscoveryRequest does not describe a plait proxy."""


def _port(meta: dict[str, Any], key: str) -> int | None:
    raw = meta.get(key)
    if raw is None:
        return None
    try:
        return int(raw)
    except (TypeError, ValueError) as exc:
        raise NodeMetadataError(f"node metadata {key}={raw!r} is not a port number") from exc


def from_node_metadata(node_id_: str, meta: dict[str, Any]) -> Proxy:
    """Rebuild the Proxy from what `to_node_metadata` wrote; raises NodeMetadataError."""
    try:
        kind = ProxyKind(meta.get("PLAIT_PROXY_KIND", "sidecar"))
    except ValueError as exc:
        raise NodeMetadataError(f"unknown proxy kind {meta.get('PLAIT_PROXY_KIND')!r}") from exc
    workload = meta.get("WORKLOAD_NAME")
    if not isinstance(workload, str) or not workload:
        raise NodeMetadataError("node metadata has no WORKLOAD_NAME")
    labels = meta.get("LABELS") or {}
    if not isinstance(labels, dict):
        raise NodeMetadataError("node metadata LABELS is not a map")
    gw_raw = meta.get("GATEWAY_PORTS") or {}
    if not isinstance(gw_raw, dict):
        raise NodeMetadataError("node metadata GATEWAY_PORTS is not a map")
    try:
        gateway_ports = tuple(sorted((int(k), int(v)) for k, v in gw_raw.items()))
    except ValueError as exc:
        raise NodeMetadataError("node metadata GATEWAY_PORTS holds a non-numeric port") from exc
    try:
        traffic = Traffic(str(meta.get("INTERCEPTION_MODE") or Traffic.EXPLICIT.value).upper())
    except ValueError as exc:
        raise NodeMetadataError(
            f"node metadata INTERCEPTION_MODE={meta.get('INTERCEPTION_MODE')!r} is not "
            f"one of {', '.join(t.value for t in Traffic)}"
        ) from exc
    return Proxy(
        id=node_id_,
        kind=kind,
        workload=workload,
        namespace=str(meta.get("NAMESPACE") or "default"),
        service_account=str(meta.get("SERVICE_ACCOUNT") or "default"),
        labels=Labels.of({str(k): str(v) for k, v in labels.items()}),
        address=str(meta.get("INSTANCE_IP") or "127.0.0.1"),
        inbound_port=_port(meta, "INBOUND_PORT"),
        app_port=_port(meta, "APP_PORT"),
        outbound_port=_port(meta, "OUTBOUND_PORT"),
        gateway_ports=gateway_ports,
        access_log=str(meta["PLAIT_ACCESS_LOG"]) if meta.get("PLAIT_ACCESS_LOG") else None,
        traffic=traffic,
    )
