"""Several VirtualServices for one host on one gateway (istioctl analyze: IST0109).

plait orders VirtualServices by namespace, then name (Istio: by creation time), and:

- for the mesh (sidecars) applies only the first VirtualService of a host: the later
  ones' rules for that host are ignored, as in Istio;
- on a named Gateway merges them: the first one's rules come first, so a later one's
  rule is used only for requests no earlier rule matched.

Each later VirtualService gets one warning per shared host that names the winner.
Hosts are compared after short-name resolution for the mesh and as written for gateways,
as the translator does.
"""

from __future__ import annotations

from plait.analysis.report import finding, where
from plait.api import Loaded
from plait.errors import ConfigMessage
from plait.model.indexes import MESH_GATEWAY, gateways_of
from plait.model.snapshot import MeshSnapshot


def host_conflicts(snapshot: MeshSnapshot) -> list[ConfigMessage]:
    """Warnings on every VirtualService that shares a host and gateway with an earlier one."""
    first: dict[tuple[str, str], Loaded] = {}
    out: list[ConfigMessage] = []
    for item in snapshot.virtual_services:
        vs = item.resource
        ns = vs.metadata.namespace
        for gateway in gateways_of(vs):
            for i, host in enumerate(vs.spec.hosts):
                name = snapshot.resolve_host(host, ns) if gateway == MESH_GATEWAY else host
                winner = first.setdefault((gateway, name), item)
                if winner is item:
                    continue
                if gateway == MESH_GATEWAY:
                    text = (
                        f"VirtualService {where(winner)} also routes {name} for the mesh "
                        "(sidecars) and comes first by namespace/name, so only its rules "
                        "apply; this VirtualService's rules for the host are ignored. Merge "
                        "the two into one VirtualService"
                    )
                else:
                    text = (
                        f"VirtualService {where(winner)} also routes {name} on Gateway "
                        f"{gateway}; their rules are merged and its rules come first (by "
                        "namespace/name), so these apply only to requests none of its rules "
                        "match. Merge the two if the order matters"
                    )
                out.append(finding(item, ["spec", "hosts", i], text))
    return out
