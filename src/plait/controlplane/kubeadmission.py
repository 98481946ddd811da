"""Kubernetes mode's admission of proxies (`xds.auth.ProxyAdmission`).

The xDS mTLS handshake has proved the certificate's `spiffe://TD/ns/NS/sa/SA` (issued by
the CA for a projected service-account token that the API server vouched for) and that
the node claims that namespace and account. This admits the node only if a Pod of that
name runs in NS as SA, belongs to the workload the node claims and carries every label it
claims (so a proxy cannot take another workload's inbound configuration). The pods are
the Kubernetes source's reflected ones: the API server's state as of its last watch event.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from plait.kube.objects import workload_name
from plait.model.identity import SpiffeId
from plait.model.proxy import Proxy

Pods = Mapping[tuple[str, str], dict[str, Any]]


def pod_name(proxy: Proxy) -> str:
    """The pod a node id names: Istio's `KIND~IP~POD.NS~DOMAIN` or plait's `KIND~POD.NS`."""
    parts = proxy.id.split("~")
    instance = parts[2] if len(parts) >= 4 else parts[-1]
    suffix = f".{proxy.namespace}"
    return instance[: -len(suffix)] if instance.endswith(suffix) else instance


class PodAdmission:
    """Admit a node only as a Pod that runs as its certificate's service account."""

    def __init__(self, pods: Callable[[], Pods]) -> None:
        self._pods = pods

    def admit(self, identity: SpiffeId, proxy: Proxy) -> str | None:
        if identity.namespace != proxy.namespace:
            return f"the node claims namespace {proxy.namespace}, not {identity}'s"
        name = pod_name(proxy)
        pod = self._pods().get((proxy.namespace, name))
        if pod is None:
            return f"no Pod {proxy.namespace}/{name} in the cluster"
        account = (pod.get("spec") or {}).get("serviceAccountName") or "default"
        if account != identity.service_account:
            return f"Pod {proxy.namespace}/{name} runs as {account}, not {identity}"
        workload = workload_name(pod)
        if workload != proxy.workload:
            return f"Pod {proxy.namespace}/{name} belongs to {workload}, not {proxy.workload}"
        labels = (pod.get("metadata") or {}).get("labels") or {}
        wrong = {k: v for k, v in proxy.labels.as_dict().items() if labels.get(k) != v}
        if wrong:
            return f"labels {wrong} are not Pod {proxy.namespace}/{name}'s"
        return None
