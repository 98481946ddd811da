"""Envoy's admin JSON as plain rows for `plait proxy-config` tables (pure, no I/O):
clusters, endpoints, secrets and the bootstrap (listeners and routes: `listenerrows`).

Inputs are what `configdump` fetched: config dump sections (proto3 JSON with Envoy's
snake_case names, envoy.admin.v3.*ConfigDump), `/clusters?format=json` and `/certs`.
Each function reads only the fields it shows and tolerates absent ones, since Envoy omits
defaults. Secrets are read for their public certificates; private keys are never read.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from cryptography import x509

from plait.local.configdump import section

UNLIMITED = 4294967295  # uint32 max: how Istio (and plait) spell "no circuit breaker limit"
TLS_SOCKET = "envoy.transport_sockets.tls"
MESH_CERT = "default"  # the SDS name of the workload certificate (as under Istio)
TRANSPORT_SOCKET_MATCH = "envoy.transport_socket_match"

Json = dict[str, Any]


class TlsMode(StrEnum):
    """How a cluster talks to its endpoints."""

    AUTO_MTLS = "mTLS (auto)"  # transport_socket_matches: mTLS to tlsMode=istio endpoints
    MTLS = "mTLS"  # always the mesh certificate (DestinationRule ISTIO_MUTUAL)
    TLS_CLIENT_CERT = "TLS + client cert"  # DestinationRule MUTUAL
    TLS = "TLS"  # DestinationRule SIMPLE
    PLAIN = "plain"


def address_text(address: Json) -> str:
    """`HOST:PORT` of an envoy.config.core.v3.Address, `unix:PATH` for a pipe."""
    if "socket_address" in address:
        sock = address["socket_address"]
        return f"{sock.get('address', '')}:{sock.get('port_value', 0)}"
    if "pipe" in address:
        return f"unix:{address['pipe'].get('path', '')}"
    return "-"


# --- clusters ------------------------------------------------------------------------
@dataclass(frozen=True)
class ClusterRow:
    name: str
    type: str  # STATIC, EDS, ORIGINAL_DST, ... or a custom cluster_type's name
    endpoints: int | None  # static hosts, or EDS hosts when the dump includes EDS
    eds: bool
    tls: TlsMode
    circuit_breakers: str  # the limits that are set, "unlimited", or "Envoy defaults"
    state: str  # static, active, warming


def _upstream_tls(socket: Json | None) -> TlsMode:
    if not socket or socket.get("name") != TLS_SOCKET:
        return TlsMode.PLAIN
    common = socket.get("typed_config", {}).get("common_tls_context", {})
    certs = [c.get("name") for c in common.get("tls_certificate_sds_secret_configs", [])]
    if MESH_CERT in certs:
        return TlsMode.MTLS
    if certs or common.get("tls_certificates"):
        return TlsMode.TLS_CLIENT_CERT
    return TlsMode.TLS


def cluster_tls(cluster: Json) -> TlsMode:
    """mTLS (auto) when some transport socket match gives mesh mTLS, else the socket's mode."""
    matches = cluster.get("transport_socket_matches", [])
    if any(_upstream_tls(m.get("transport_socket")) == TlsMode.MTLS for m in matches):
        return TlsMode.AUTO_MTLS
    return _upstream_tls(cluster.get("transport_socket"))


_LIMIT_NAMES = {
    "max_connections": "conn",
    "max_pending_requests": "pending",
    "max_requests": "requests",
    "max_retries": "retries",
}


def circuit_breakers(cluster: Json) -> str:
    """The default-priority thresholds that limit something, e.g. `conn 100, pending 10`."""
    thresholds = [
        t
        for t in cluster.get("circuit_breakers", {}).get("thresholds", [])
        if t.get("priority", "DEFAULT") == "DEFAULT"
    ]
    if not thresholds:
        return "Envoy defaults"
    limits = [
        f"{short} {thresholds[0][key]}"
        for key, short in _LIMIT_NAMES.items()
        if key in thresholds[0] and int(thresholds[0][key]) != UNLIMITED
    ]
    return ", ".join(limits) or "unlimited"


def _hosts(assignment: Json) -> list[Json]:
    return [h for group in assignment.get("endpoints", []) for h in group.get("lb_endpoints", [])]


def _cluster_type(cluster: Json) -> str:
    if "cluster_type" in cluster:
        return str(cluster["cluster_type"].get("name", "custom"))
    return str(cluster.get("type", "STATIC"))


def cluster_rows(dump: Json) -> list[ClusterRow]:
    """Static and dynamic (active, warming) clusters, sorted by name."""
    eds_hosts = {
        str(a.get("cluster_name")): len(_hosts(a))
        for a in _endpoint_assignments(section(dump, "endpoint"))
    }
    dumped = section(dump, "cluster")
    found: list[tuple[Json, str]] = [
        (c["cluster"], "static") for c in dumped.get("static_clusters", [])
    ]
    found += [(c["cluster"], "active") for c in dumped.get("dynamic_active_clusters", [])]
    found += [(c["cluster"], "warming") for c in dumped.get("dynamic_warming_clusters", [])]
    rows = []
    for cluster, state in found:
        kind = _cluster_type(cluster)
        eds = kind == "EDS"
        name = str(cluster.get("name", ""))
        if eds:
            service = cluster.get("eds_cluster_config", {}).get("service_name") or name
            count = eds_hosts.get(service)
        else:
            count = (
                len(_hosts(cluster["load_assignment"])) if "load_assignment" in cluster else None
            )
        rows.append(
            ClusterRow(
                name, kind, count, eds, cluster_tls(cluster), circuit_breakers(cluster), state
            )
        )
    return sorted(rows, key=lambda r: r.name)


# --- endpoints -----------------------------------------------------------------------
@dataclass(frozen=True)
class EndpointRow:
    cluster: str
    address: str
    health: str  # HEALTHY, or UNHEALTHY (why: outlier check, active health check...)
    weight: int
    tls_mode: str | None  # the endpoint's `tlsMode` metadata (`istio`: a sidecar), if any


def _endpoint_assignments(endpoints: Json) -> list[Json]:
    dumped = endpoints.get("static_endpoint_configs", []) + endpoints.get(
        "dynamic_endpoint_configs", []
    )
    return [e.get("endpoint_config", {}) for e in dumped]


def _tls_modes(dump: Json) -> dict[tuple[str, str], str]:
    """(cluster, address) → tlsMode, from EDS assignments and static clusters' own."""
    assignments = _endpoint_assignments(section(dump, "endpoint"))
    clusters = section(dump, "cluster")
    for entry in clusters.get("static_clusters", []) + clusters.get("dynamic_active_clusters", []):
        if "load_assignment" in entry.get("cluster", {}):
            assignments.append(entry["cluster"]["load_assignment"])
    modes = {}
    for assignment in assignments:
        for host in _hosts(assignment):
            meta = host.get("metadata", {}).get("filter_metadata", {})
            mode = meta.get(TRANSPORT_SOCKET_MATCH, {}).get("tlsMode")
            if mode is not None:
                address = address_text(host.get("endpoint", {}).get("address", {}))
                modes[(str(assignment.get("cluster_name", "")), address)] = str(mode)
    return modes


_FAILED_CHECKS = {
    "failed_outlier_check": "outlier check",
    "failed_active_health_check": "active health check",
    "active_hc_timeout": "active health check timeout",
    "pending_active_hc": "active health check pending",
    "excluded_via_immediate_hc_fail": "immediate health check fail",
}


def health_text(status: Json) -> str:
    """`HEALTHY`; `UNHEALTHY (outlier check)` when a check fails whatever EDS says; `DEGRADED`.

    Fields of envoy.admin.v3.HostHealthStatus.
    """
    failed = [why for key, why in _FAILED_CHECKS.items() if status.get(key)]
    if failed:
        text = f"UNHEALTHY ({', '.join(failed)})"
    elif status.get("failed_active_degraded_check"):
        text = "DEGRADED (active health check)"
    else:
        text = str(status.get("eds_health_status", "HEALTHY"))
    return f"{text}, removal pending" if status.get("pending_dynamic_removal") else text


def endpoint_rows(clusters: Json, dump: Json) -> list[EndpointRow]:
    """Hosts of `/clusters?format=json` (live health) with the `tlsMode` the config dump
    (`include_eds`) gives them, sorted by cluster then address."""
    modes = _tls_modes(dump)
    rows = []
    for cluster in clusters.get("cluster_statuses", []):
        name = str(cluster.get("name", ""))
        for host in cluster.get("host_statuses", []):
            address = address_text(host.get("address", {}))
            rows.append(
                EndpointRow(
                    cluster=name,
                    address=address,
                    health=health_text(host.get("health_status", {})),
                    weight=int(host.get("weight", 1)),
                    tls_mode=modes.get((name, address)),
                )
            )
    return sorted(rows, key=lambda r: (r.cluster, r.address))


# --- secrets -------------------------------------------------------------------------
@dataclass(frozen=True)
class SecretRow:
    """One certificate of an SDS secret: the leaf of a chain, or each root of a bundle."""

    name: str
    kind: str  # "cert chain", "CA bundle", or the secret's own kind
    status: str  # ACTIVE, WARMING, STATIC
    serial: str  # hex, as Envoy's /certs prints it
    sans: tuple[str, ...]
    not_before: dt.datetime | None
    not_after: dt.datetime | None
    in_use: bool  # a TLS context of Envoy holds it (`/certs` lists its serial)

    def valid_at(self, now: dt.datetime) -> bool:
        return (
            self.not_before is not None
            and self.not_after is not None
            and self.not_before <= now <= self.not_after
        )


def _pem_certificates(source: Json) -> list[x509.Certificate]:
    raw = source.get("inline_bytes")
    data = base64.b64decode(raw) if raw else str(source.get("inline_string", "")).encode()
    try:
        return x509.load_pem_x509_certificates(data) if data else []
    except ValueError:
        return []


def _sans(cert: x509.Certificate) -> tuple[str, ...]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ()
    return tuple(
        str(v)
        for kind in (x509.UniformResourceIdentifier, x509.DNSName)
        for v in ext.get_values_for_type(kind)
    )


def _serial(cert: x509.Certificate) -> str:
    """Hex of the serial's bytes, as Envoy's `/certs` prints it (`0467f7...`)."""
    number = cert.serial_number
    return number.to_bytes(max(1, (number.bit_length() + 7) // 8), "big").hex()


def loaded_serials(certs: Json) -> set[str]:
    """Serials (hex, no leading zeros) of every certificate `/certs` lists."""
    return {
        str(c.get("serial_number", "")).lstrip("0")
        for entry in certs.get("certificates", [])
        for key in ("cert_chain", "ca_cert")
        for c in entry.get(key) or []
    }


def _secret_rows(secret: Json, status: str, in_use: set[str]) -> Iterator[SecretRow]:
    name = str(secret.get("name", ""))
    if "tls_certificate" in secret:
        kind = "cert chain"
        chain = _pem_certificates(secret["tls_certificate"].get("certificate_chain", {}))
        certs = chain[:1]
    elif "validation_context" in secret:
        kind = "CA bundle"
        certs = _pem_certificates(secret["validation_context"].get("trusted_ca", {}))
    else:
        kind = next((k for k in secret if k not in ("name", "@type")), "secret")
        certs = []
    if not certs:
        yield SecretRow(name, kind, status, "-", (), None, None, False)
    for cert in certs:
        serial = _serial(cert)
        yield SecretRow(
            name=name,
            kind=kind,
            status=status,
            serial=serial,
            sans=_sans(cert),
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
            in_use=serial.lstrip("0") in in_use,
        )


def secret_rows(dump: Json, certs: Json) -> list[SecretRow]:
    """Static, active and warming secrets with their certificates' serial, SANs and validity."""
    dumped = section(dump, "secret")
    in_use = loaded_serials(certs)
    rows: list[SecretRow] = []
    for key, status in (
        ("static_secrets", "STATIC"),
        ("dynamic_active_secrets", "ACTIVE"),
        ("dynamic_warming_secrets", "WARMING"),
    ):
        for entry in dumped.get(key, []):
            secret = entry.get("secret") or {"name": entry.get("name", "")}
            rows += _secret_rows(secret, status, in_use)
    return rows


# --- bootstrap -----------------------------------------------------------------------
@dataclass(frozen=True)
class BootstrapInfo:
    node_id: str
    node_cluster: str
    envoy_version: str
    metadata: dict[str, Any]
    xds: str  # ADS: its cluster, the addresses it reaches, TLS or plain
    admin: str  # the admin address in the bootstrap (port 0: Envoy picked one)


def _build_version(node: Json) -> str:
    version = node.get("user_agent_build_version", {}).get("version", {})
    if not version:
        return "-"
    return ".".join(str(version.get(k, 0)) for k in ("major_number", "minor_number", "patch"))


def bootstrap_info(dump: Json) -> BootstrapInfo:
    """Node identity, metadata and where the proxy gets its config (the ADS cluster)."""
    boot = section(dump, "bootstrap").get("bootstrap", {})
    node = boot.get("node", {})
    ads = boot.get("dynamic_resources", {}).get("ads_config", {})
    grpc = (ads.get("grpc_services") or [{}])[0]
    ads_cluster = str(grpc.get("envoy_grpc", {}).get("cluster_name", ""))
    xds = "-"
    for cluster in boot.get("static_resources", {}).get("clusters", []):
        if cluster.get("name") == ads_cluster:
            hosts = _hosts(cluster.get("load_assignment", {}))
            addresses = ", ".join(
                address_text(h.get("endpoint", {}).get("address", {})) for h in hosts
            )
            tls = (
                "TLS" if cluster.get("transport_socket", {}).get("name") == TLS_SOCKET else "plain"
            )
            xds = f"{addresses} (cluster {ads_cluster}, {tls})"
    return BootstrapInfo(
        node_id=str(node.get("id", "")),
        node_cluster=str(node.get("cluster", "")),
        envoy_version=_build_version(node),
        metadata=dict(node.get("metadata", {})),
        xds=xds,
        admin=address_text(boot.get("admin", {}).get("address", {})),
    )
