"""Traffic to hosts outside the registry: the outbound route table's catch-all.

Today there is none, so Envoy answers 404 (NR) for an unknown host; the mesh's
outboundTrafficPolicy (ALLOW_ANY / REGISTRY_ONLY) is applied here.
"""

from __future__ import annotations

from envoy.config.route.v3 import route_components_pb2 as rc

from plait.model.snapshot import MeshSnapshot


def catch_all_vhost(snapshot: MeshSnapshot) -> rc.VirtualHost | None:
    """The virtual host for every domain no service claims, or None for Envoy's 404."""
    del snapshot
    return None
