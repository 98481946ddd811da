"""What an injector needs to know besides the pod: images, addresses, ports, resources.

The defaults match the chart's values and Istio's injector where Istio has one (proxy UID
1337, health port 15021, Envoy's Prometheus port 15090, the 12 h projected token).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from plait.capture.settings import PROXY_UID

PROXY_NAME: Final = "istio-proxy"
"""The sidecar container's name, as Istio's (tools and dashboards look it up by name)."""
INIT_NAME: Final = "istio-init"
"""The capture init container's name, as Istio's."""
TOKEN_VOLUME: Final = "plait-token"
TOKEN_DIR: Final = "/var/run/secrets/tokens"
TOKEN_FILE: Final = "plait-token"
TOKEN_PATH: Final = f"{TOKEN_DIR}/{TOKEN_FILE}"
"""Where the agent in a pod reads its projected service-account token."""
TOKEN_AUDIENCE: Final = "plait-ca"
"""The audience of the projected token: the CA accepts no token made for anyone else."""

ROOT_CERT_VOLUME: Final = "istio-ca-root-cert"
"""The ConfigMap (and volume) with the mesh's trust bundle, published to every namespace
by the control plane (plait.kube.rootcert), as Istio's."""
ROOT_CERT_DIR: Final = "/var/run/secrets/istio"
ROOT_CERT_PATH: Final = f"{ROOT_CERT_DIR}/root-cert.pem"

WORKLOAD_ENV: Final = "ISTIO_META_WORKLOAD_NAME"
LABELS_ENV: Final = "ISTIO_METAJSON_LABELS"
PORTS_ENV: Final = "ISTIO_META_POD_PORTS"
"""The proxy container's variables naming its workload, labels and app ports."""

HEALTH_PORT: Final = 15021
HEALTH_PATH: Final = "/healthz/ready"
METRICS_PORT: Final = 15090
"""Envoy's own stats (a static listener of the pod's bootstrap), as Istio's."""
MERGED_METRICS_PORT: Final = 15020
"""The agent's metrics endpoint: Envoy's stats with Istio's request families under
Istio's names (`telemetry.exporter`); what the scrape annotation names, as Istio's."""
METRICS_PATH: Final = "/stats/prometheus"


@dataclass(frozen=True)
class Resources:
    """A container's requests and limits, in Kubernetes quantity strings ("" = unset)."""

    cpu_request: str = "100m"
    memory_request: str = "128Mi"
    cpu_limit: str = "2000m"
    memory_limit: str = "1024Mi"

    def to_kube(self) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {}
        requests = {
            k: v for k, v in (("cpu", self.cpu_request), ("memory", self.memory_request)) if v
        }
        limits = {k: v for k, v in (("cpu", self.cpu_limit), ("memory", self.memory_limit)) if v}
        if requests:
            out["requests"] = requests
        if limits:
            out["limits"] = limits
        return out


@dataclass(frozen=True)
class InjectSettings:
    """The mesh-wide inputs of `inject` (the chart's values; the pod's annotations
    override resources and capture per pod)."""

    proxy_image: str = "ghcr.io/plait-mesh/plait-proxy:0.1.0"
    image_pull_policy: str = "IfNotPresent"
    xds_address: str = "plaitd.istio-system.svc:15010"
    ca_address: str = "https://plaitd.istio-system.svc:15012"
    trust_domain: str = "cluster.local"
    proxy_uid: int = PROXY_UID
    token_audience: str = TOKEN_AUDIENCE
    token_expiration_s: int = 43200
    resources: Resources = field(default_factory=Resources)
    hold_application_until_proxy_starts: bool = True
    """The app starts only once the proxy is ready (Istio's holdApplicationUntilProxyStarts;
    on by default here, off by default in Istio)."""
    revision: str = "default"
