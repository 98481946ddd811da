"""The proxy in a Kubernetes pod: `plait proxy sidecar|router` (see `settings`)."""

from plait.podproxy.runner import PodProxy
from plait.podproxy.settings import PodInfo, PodProxyOptions, pod_info, pod_proxy

__all__ = ["PodInfo", "PodProxy", "PodProxyOptions", "pod_info", "pod_proxy"]
