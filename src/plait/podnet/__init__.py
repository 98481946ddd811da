"""Pods as Linux network namespaces on a bridge, with per-pod name resolution.

Used by transparent local mode and by the Kubernetes test cluster's node agent; the
capture rules inside a pod come from `plait capture apply` (plait.capture).
"""

from plait.podnet.addresses import ClusterIPAllocator, free_subnets, routed_networks
from plait.podnet.names import PodDns, ServiceName, hosts_text, resolv_text
from plait.podnet.network import Pod, PodNetwork, teardown

__all__ = [
    "ClusterIPAllocator",
    "Pod",
    "PodDns",
    "PodNetwork",
    "ServiceName",
    "free_subnets",
    "hosts_text",
    "resolv_text",
    "routed_networks",
    "teardown",
]
