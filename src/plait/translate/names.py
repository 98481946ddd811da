"""Names of Envoy objects, made in one place.

Cluster names follow Istio (`outbound|PORT|SUBSET|HOST`, `inbound|PORT||`) so that Istio
tooling, dashboards and stats tags that parse them keep working.
"""

from __future__ import annotations

from dataclasses import dataclass

OUTBOUND_LISTENER = "virtualOutbound"
INBOUND_LISTENER = "virtualInbound"
INBOUND_MTLS_CHAIN = "inbound-mtls"  # the inbound listener's filter chains
INBOUND_PLAINTEXT_CHAIN = "inbound-plaintext"
OUTBOUND_ROUTE = "outbound"
XDS_CLUSTER = "xds-grpc"
ORIGINAL_DST_DIRECTION = "outbound-pod"


def outbound_cluster(host: str, port: int, subset: str = "") -> str:
    return f"outbound|{port}|{subset}|{host}"


def original_dst_cluster(host: str, port: int, subset: str = "") -> str:
    """A headless host's cluster for captured sidecars (`headless`): it connects to the pod
    the app chose; Istio's layout with its own direction, beside the EDS cluster."""
    return f"{ORIGINAL_DST_DIRECTION}|{port}|{subset}|{host}"


def headless_route(host: str, port: int) -> str:
    """A headless host port's route table, read by its pods' filter chains (`headless`)."""
    return f"headless|{port}|{host}"


def inbound_cluster(port: int) -> str:
    return f"inbound|{port}||"


def gateway_listener(port: int) -> str:
    return f"0.0.0.0_{port}"


def gateway_route(port: int) -> str:
    return f"http.{port}"


@dataclass(frozen=True)
class ClusterName:
    direction: str
    port: int
    subset: str
    host: str


def parse_cluster(name: str) -> ClusterName | None:
    """Split an Istio-style cluster name; None for names plait did not make."""
    parts = name.split("|")
    if len(parts) != 4 or parts[0] not in ("inbound", "outbound"):
        return None
    try:
        port = int(parts[1])
    except ValueError:
        return None
    return ClusterName(parts[0], port, parts[2], parts[3])
