"""One outbound host's clusters and endpoint sets, built together (`build`).

A `HostBuild` records the inputs it was made from (`translate.reuse.host_inputs` and the
DestinationRules applied), so a later snapshot's Translator can take it over whole when
they are equal, and the service port of each resource, so a scope can take the ports it
reaches (`at`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from plait.model.peerauth import PeerAuthentications
from plait.model.policy import HostRules
from plait.model.snapshot import MeshSnapshot
from plait.translate import clusters, egress, endpoints, metrics, mtls
from plait.translate.resource import Resource


@dataclass(frozen=True)
class HostBuild:
    """One outbound host's clusters and endpoint sets, and the inputs they came from
    (`cluster_ports`, `endpoint_ports`: the service port of each)."""

    hostname: str
    inputs: tuple[Any, ...]
    clusters: list[Resource]
    endpoints: list[Resource]
    cluster_ports: tuple[int, ...] = ()
    endpoint_ports: tuple[int, ...] = ()

    def at(self, ports: frozenset[int]) -> list[Resource]:
        """The clusters and endpoint sets of these service ports."""
        return [
            *(c for c, p in zip(self.clusters, self.cluster_ports, strict=True) if p in ports),
            *(e for e, p in zip(self.endpoints, self.endpoint_ports, strict=True) if p in ports),
        ]


def build(
    snapshot: MeshSnapshot,
    hostname: str,
    rules: HostRules | None,
    peer_auth: PeerAuthentications,
    inputs: tuple[Any, ...],
) -> HostBuild:
    """Every port and subset of the host: its cluster and, for EDS ones, endpoint set."""
    cds: list[Resource] = []
    eds: list[Resource] = []
    cds_ports: list[int] = []
    eds_ports: list[int] = []
    service = snapshot.services[hostname]
    trust_domain = snapshot.mesh.trust_domain
    subsets: list[tuple[str, dict[str, str]]] = [
        ("", {}),
        *((s.name, dict(s.labels)) for s in (rules.subsets if rules is not None else ())),
    ]
    for port in service.ports:
        eps = snapshot.endpoints_for(hostname, port.port)
        peers = mtls.identities(eps, trust_domain)
        for subset, labels in subsets:
            policy = rules.policy_for(port.port, subset) if rules is not None else None
            cluster = clusters.outbound_cluster(service, port, subset, policy, peers)
            egress.finish_cluster(cluster, service, eps, labels)
            metrics.tag_cluster(cluster, service)
            cds.append(Resource.pack(cluster.name, cluster))
            cds_ports.append(port.port)
            if cluster.HasField("eds_cluster_config"):
                tls = policy.tls if policy is not None else None
                speaks_mtls = mtls.endpoint_mtls(peer_auth, port, tls)
                cla = endpoints.load_assignment(cluster.name, eps, labels, speaks_mtls)
                eds.append(Resource.pack(cluster.name, cla))
                eds_ports.append(port.port)
    return HostBuild(hostname, inputs, cds, eds, tuple(cds_ports), tuple(eds_ports))
