"""The per-proxy agent: Envoy's bootstrap, the process that supervises Envoy, its admin API.

bootstrap(BootstrapOptions) -> dict      pure; the Envoy v3 bootstrap
EnvoySupervisor                          start / wait_ready / stop, restarts on crash
config_dump, stats, server_state         read Envoy's admin API
find_envoy                               locate the Envoy binary
"""

from plait.agent.admin import config_dump, server_state, stats
from plait.agent.bootstrap import XDS_CLUSTER, BootstrapOptions, bootstrap
from plait.agent.envoy import find_envoy
from plait.agent.supervisor import EnvoySupervisor, SupervisorOptions

__all__ = [
    "XDS_CLUSTER",
    "BootstrapOptions",
    "EnvoySupervisor",
    "SupervisorOptions",
    "bootstrap",
    "config_dump",
    "find_envoy",
    "server_state",
    "stats",
]
