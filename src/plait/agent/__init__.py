"""The per-proxy agent: identity, SDS, Envoy's bootstrap, the Envoy supervisor, admin API.

bootstrap(BootstrapOptions) -> dict      pure; the Envoy v3 bootstrap
EnvoySupervisor                          start / wait_ready / stop, restarts on crash
CertificateManager                       private key, CSR to the CA, renewal, trust bundle
SdsServer                                the certificate and bundle to Envoy over SDS
SidecarAgent                             the three above for one proxy, started in order
config_dump, stats, server_state         read Envoy's admin API
find_envoy                               locate the Envoy binary
"""

from plait.agent.admin import config_dump, server_state, stats
from plait.agent.bootstrap import XDS_CLUSTER, BootstrapOptions, bootstrap
from plait.agent.envoy import find_envoy
from plait.agent.identity import CaClientOptions, CertificateManager, WorkloadCertificate
from plait.agent.sds import SdsServer
from plait.agent.sidecar import SidecarAgent, SidecarOptions
from plait.agent.supervisor import EnvoySupervisor, SupervisorOptions

__all__ = [
    "XDS_CLUSTER",
    "BootstrapOptions",
    "CaClientOptions",
    "CertificateManager",
    "EnvoySupervisor",
    "SdsServer",
    "SidecarAgent",
    "SidecarOptions",
    "SupervisorOptions",
    "WorkloadCertificate",
    "bootstrap",
    "config_dump",
    "find_envoy",
    "server_state",
    "stats",
]
