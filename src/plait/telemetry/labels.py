"""Istio's standard metric labels for one request, from one access-log record. Pure.

Semantics follow Istio's standard metrics (istio.io, "Istio Standard Metrics"):

- `reporter`: `destination` for a record of a sidecar's inbound listener, `source` for its
  outbound listener and for the ingress gateway (Istio's gateways report as source).
- The reporting proxy fills its own side from what it is (`Workload`); the peer side:
  - inbound (caller): `source_principal` is the caller's certificate (`downstream_peer_uri_san`);
    the workload is the one its sidecar named (`source_workload` field, `translate.peer`)
    when that agrees with the certificate (same namespace and service account), else the
    only workload that runs under that identity (e.g. the gateway), else `unknown` — a
    service account alone may be shared by several workloads;
  - outbound (callee): the registry instance at `upstream_host` (a sidecar's inbound
    address), else the only workload under `upstream_peer_uri_san`, else `unknown`.
- `source_principal` on a source report is the proxy's own identity when the upstream
  connection was mTLS (the callee presented a certificate), as in Istio; `unknown` otherwise.
- `destination_service`: the FQDN of the service the request was for: on outbound from
  the cluster name (`outbound|PORT|SUBSET|HOST`); on inbound from the mTLS SNI the caller
  sent (`outbound_.PORT_.SUBSET_.HOST`), else the `:authority`, else the only service
  selecting the reporting workload. `destination_service_name`/`_namespace` come from the
  registry; a host the mesh does not know keeps its name with namespace `unknown`.
- `connection_security_policy`: `mutual_tls` or `none` on destination reports (did the
  caller present a certificate), `unknown` on source reports.
- `response_code` `0` when no response was sent; `response_flags` Envoy's short flags, `-`
  when none; `request_protocol` `grpc` for a gRPC content type, else `http`.
- Also Istio's `*_canonical_service`, `*_canonical_revision` (from the
  `service.istio.io/canonical-*` labels, else `app`/`version`) and `*_cluster` (`Kubernetes`,
  Istio's default cluster id), so Kiali-style queries work.
Missing values are `unknown`, as in Istio.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from plait.model.identity import SpiffeId, SpiffeIdError
from plait.model.registry import Service, service_hostname

UNKNOWN = "unknown"
CLUSTER_ID = "Kubernetes"
INBOUND, OUTBOUND, GATEWAY = "inbound", "outbound", "gateway"

LABEL_NAMES: tuple[str, ...] = (
    "reporter",
    "source_workload",
    "source_workload_namespace",
    "source_principal",
    "source_app",
    "source_version",
    "source_canonical_service",
    "source_canonical_revision",
    "source_cluster",
    "destination_workload",
    "destination_workload_namespace",
    "destination_principal",
    "destination_app",
    "destination_version",
    "destination_service",
    "destination_service_name",
    "destination_service_namespace",
    "destination_canonical_service",
    "destination_canonical_revision",
    "destination_cluster",
    "request_protocol",
    "response_code",
    "response_flags",
    "connection_security_policy",
)
"""Every label of the istio_request* families, in exposition order."""


@dataclass(frozen=True)
class Workload:
    """A workload (Deployment, or the gateway) as the metrics name it."""

    name: str
    namespace: str
    service_account: str = "default"
    labels: Mapping[str, str] = field(default_factory=dict)

    def side(self, prefix: str, principal: str) -> dict[str, str]:
        labels = self.labels
        app = labels.get("app") or labels.get("app.kubernetes.io/name") or UNKNOWN
        version = labels.get("version") or labels.get("app.kubernetes.io/version") or UNKNOWN
        canonical = labels.get("service.istio.io/canonical-name") or (
            app if app != UNKNOWN else self.name
        )
        revision = labels.get("service.istio.io/canonical-revision") or (
            version if version != UNKNOWN else "latest"
        )
        return {
            f"{prefix}_workload": self.name,
            f"{prefix}_workload_namespace": self.namespace,
            f"{prefix}_principal": principal,
            f"{prefix}_app": app,
            f"{prefix}_version": version,
            f"{prefix}_canonical_service": canonical,
            f"{prefix}_canonical_revision": revision,
            f"{prefix}_cluster": CLUSTER_ID if self.name != UNKNOWN else UNKNOWN,
        }


NOBODY = Workload(UNKNOWN, UNKNOWN, UNKNOWN)


@dataclass(frozen=True)
class MeshView:
    """What the labels are looked up in: workloads, where their sidecars listen, services."""

    workloads: tuple[Workload, ...] = ()
    addresses: Mapping[str, Workload] = field(default_factory=dict)  # "IP:PORT" → workload
    services: Mapping[str, Service] = field(default_factory=dict)  # hostname → service

    def workload(self, namespace: str, name: str) -> Workload | None:
        return next(
            (w for w in self.workloads if w.namespace == namespace and w.name == name), None
        )

    def only_under(self, identity: SpiffeId) -> Workload | None:
        """The one workload running as `identity`; None if none or several."""
        found = [
            w
            for w in self.workloads
            if w.namespace == identity.namespace and w.service_account == identity.service_account
        ]
        return found[0] if len(found) == 1 else None


def _text(record: Mapping[str, Any], key: str) -> str | None:
    value = record.get(key)
    return str(value) if value not in (None, "", "-") else None


def _spiffe(uri: str | None) -> SpiffeId | None:
    if uri is None:
        return None
    try:
        return SpiffeId.parse(uri)
    except SpiffeIdError:
        return None


def caller(record: Mapping[str, Any], view: MeshView) -> Workload:
    """The calling workload of an inbound record (see the module docstring)."""
    identity = _spiffe(_text(record, "downstream_peer_uri_san"))
    named = _text(record, "source_workload")
    if named is not None and "/" in named:
        namespace, name = named.split("/", 1)
        known = view.workload(namespace, name)
        if identity is None or (
            identity.namespace == namespace
            and (known is None or known.service_account == identity.service_account)
        ):
            if known is not None:
                return known
            return Workload(name, namespace, identity.service_account if identity else UNKNOWN)
    if identity is not None:
        return view.only_under(identity) or Workload(
            UNKNOWN, identity.namespace, identity.service_account
        )
    return NOBODY


def callee(record: Mapping[str, Any], view: MeshView) -> Workload:
    """The called workload of an outbound or gateway record."""
    host = _text(record, "upstream_host")
    if host is not None and host in view.addresses:
        return view.addresses[host]
    identity = _spiffe(_text(record, "upstream_peer_uri_san"))
    if identity is not None:
        return view.only_under(identity) or Workload(
            UNKNOWN, identity.namespace, identity.service_account
        )
    return NOBODY


def _resolve(host: str, namespace: str, view: MeshView) -> str:
    """`:authority` → service hostname, as an app in `namespace` would have meant it."""
    host = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    if host in view.services:
        return host
    parts = host.split(".")
    if len(parts) == 1:
        return service_hostname(host, namespace)
    if len(parts) == 2 or (len(parts) == 3 and parts[2] == "svc"):
        return service_hostname(parts[0], parts[1])
    return host


def _from_cluster(cluster: str | None, prefix: str, sep: str) -> str | None:
    """HOST from `outbound|PORT|SUBSET|HOST` or the SNI `outbound_.PORT_.SUBSET_.HOST`."""
    if cluster is None or not cluster.startswith(prefix):
        return None
    parts = cluster.split(sep, 3)
    return parts[3] if len(parts) == 4 and parts[3] else None


def destination_service(
    record: Mapping[str, Any], reporter: Workload, peer_namespace: str, view: MeshView
) -> str | None:
    """The FQDN the request was for, or None (see the module docstring)."""
    if record.get("direction") == INBOUND:
        sni = _from_cluster(_text(record, "requested_server_name"), "outbound_.", "_.")
        if sni is not None:
            return sni
        authority = _text(record, "authority")
        if authority is not None:
            namespace = peer_namespace if peer_namespace != UNKNOWN else reporter.namespace
            found = _resolve(authority, namespace, view)
            if found in view.services:
                return found
        mine = [
            s.hostname
            for s in view.services.values()
            if s.namespace == reporter.namespace
            and s.selector
            and all(reporter.labels.get(k) == v for k, v in s.selector.items())
        ]
        return mine[0] if len(mine) == 1 else None
    cluster = _from_cluster(_text(record, "upstream_cluster"), "outbound|", "|")
    if cluster is not None:
        return cluster
    authority = _text(record, "authority")
    return _resolve(authority, reporter.namespace, view) if authority is not None else None


def _service_labels(hostname: str | None, view: MeshView) -> dict[str, str]:
    service = view.services.get(hostname) if hostname is not None else None
    if service is not None:
        name, namespace = service.name, service.namespace
    else:
        name, namespace = hostname or UNKNOWN, UNKNOWN
    return {
        "destination_service": hostname or UNKNOWN,
        "destination_service_name": name,
        "destination_service_namespace": namespace,
    }


def _protocol(record: Mapping[str, Any]) -> str:
    content_type = _text(record, "content_type") or ""
    return "grpc" if content_type.startswith("application/grpc") else "http"


def request_labels(
    record: Mapping[str, Any], reporter: Workload, identity: str | None, view: MeshView
) -> dict[str, str] | None:
    """Istio's labels for one access-log record of the proxy of `reporter` (whose own
    SPIFFE ID is `identity`); None for a record of no known direction."""
    direction = record.get("direction")
    if direction == INBOUND:
        peer = caller(record, view)
        peer_principal = _text(record, "downstream_peer_uri_san")
        own_principal = _text(record, "downstream_local_uri_san") or UNKNOWN
        labels = {
            "reporter": "destination",
            **peer.side("source", peer_principal or UNKNOWN),
            **reporter.side("destination", own_principal),
            "connection_security_policy": "mutual_tls" if peer_principal else "none",
        }
        hostname = destination_service(record, reporter, peer.namespace, view)
    elif direction in (OUTBOUND, GATEWAY):
        peer = callee(record, view)
        peer_principal = _text(record, "upstream_peer_uri_san")
        own = (identity or UNKNOWN) if peer_principal else UNKNOWN
        labels = {
            "reporter": "source",
            **reporter.side("source", own),
            **peer.side("destination", peer_principal or UNKNOWN),
            "connection_security_policy": UNKNOWN,
        }
        hostname = destination_service(record, reporter, peer.namespace, view)
    else:
        return None
    code = record.get("response_code")
    labels |= _service_labels(hostname, view)
    labels |= {
        "request_protocol": _protocol(record),
        "response_code": str(code) if isinstance(code, int) else "0",
        "response_flags": _text(record, "response_flags") or "-",
    }
    return {name: labels[name] for name in LABEL_NAMES}
