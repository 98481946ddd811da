"""`plait discovery`: the control plane of a Kubernetes cluster, as istiod is.

The same process as local mode's (`controlplane.main.serve`: pipeline, xDS, status) on
another platform: the Kubernetes source instead of the mesh directory and registry, and
`PodAdmission` for proxies. The cluster is found by kubectl's rules (`plait.kube.config`:
`--kubeconfig`, `--context`, `KUBECONFIG`, `~/.kube/config`, in-cluster in a pod).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import dataclass
from pathlib import Path

from plait.analysis import vet
from plait.controlplane.kubeadmission import PodAdmission
from plait.controlplane.main import ControlPlaneOptions, Platform, serve
from plait.kube import config as kubeconfig
from plait.sources.kube import KubernetesSource

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DiscoveryOptions:
    kubeconfig: Path | None = None
    context: str | None = None
    host: str = "0.0.0.0"  # noqa: S104 - in a pod, proxies connect from other pods
    xds_port: int = 15010
    status_port: int = 15014


async def run(opts: DiscoveryOptions, stop: asyncio.Event | None = None) -> None:
    config = kubeconfig.load(opts.kubeconfig, opts.context)
    log.info("watching %s (context %s)", config.cluster.server, config.context_name)
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
    http = kubeconfig.http_client(config)
    try:
        source = KubernetesSource(http, check=vet)
        platform = Platform([source], lambda _: PodAdmission(lambda: source.pods.items))
        cp = ControlPlaneOptions(
            host=opts.host,
            xds_port=opts.xds_port,
            debug_port=opts.status_port,
            security=None,  # the CA's TokenReview side comes with sidecar injection
        )
        await serve(cp, stop, platform)
    finally:
        await http.aclose()


def main(opts: DiscoveryOptions) -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("httpx2").setLevel(logging.WARNING)  # one line per watch otherwise
    asyncio.run(run(opts))
