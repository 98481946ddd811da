"""The sidecar agent of each proxy `plait up` runs: its token, key and certificate, SDS
socket, and Envoy (in a pod in transparent mode: see `local.pods`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plait.agent.sidecar import SidecarAgent, SidecarOptions
from plait.agent.supervisor import SupervisorOptions
from plait.local import pods
from plait.local.identity import LocalIdentity
from plait.model.proxy import Proxy
from plait.podnet import Pod


@dataclass(frozen=True)
class AgentSite:
    """What every agent of one run shares: identities, files, the CA and xDS addresses."""

    identity: LocalIdentity
    run_dir: Path
    ca_url: str
    xds_host: str
    xds_port: int


def sidecar_agent(
    site: AgentSite, proxy: Proxy, instance: str, name: str | None = None, pod: Pod | None = None
) -> SidecarAgent:
    """One proxy's agent; its Envoy runs in `pod` if given, its admin API on the pod IP."""
    name = name or proxy.id.split("~", 1)[1]
    token = site.identity.token_file(instance, proxy.namespace, proxy.service_account)
    in_pod: dict[str, Any] = {}
    if pod is not None:
        in_pod = {
            "admin_host": str(pod.ip),
            "admin_port": pods.ADMIN_PORT,
            "supervisor": SupervisorOptions(wrapper=pods.envoy_wrapper(pod)),
        }
    return SidecarAgent(
        SidecarOptions(
            proxy=proxy,
            run_dir=site.run_dir / "envoy",
            ca=site.identity.ca_options(proxy, token, site.ca_url),
            sds_socket=site.identity.sds_socket(name),
            xds_host=site.xds_host,
            xds_port=site.xds_port,
            name=name,
            **in_pod,
        )
    )
