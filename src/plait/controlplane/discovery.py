"""`plait discovery`: the control plane of a Kubernetes cluster, as istiod is.

The same process as local mode's (`controlplane.main.serve`: pipeline, xDS, status) on
another platform: the Kubernetes source instead of the mesh directory and registry, and
`PodAdmission` for proxies. The cluster is found by kubectl's rules (`plait.kube.config`:
`--kubeconfig`, `--context`, `KUBECONFIG`, `~/.kube/config`, in-cluster in a pod).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import signal
import socket
from dataclasses import dataclass
from pathlib import Path

from lightkube import AsyncClient

from plait.analysis import vet
from plait.ca.kubetokens import TokenReviewVerifier
from plait.controlplane.kubeadmission import PodAdmission
from plait.controlplane.main import ControlPlaneOptions, Platform, serve
from plait.controlplane.security import SecurityOptions
from plait.kube import config as kubeconfig
from plait.kube.lease import LeaderElector
from plait.kube.status import StatusWriter
from plait.sources.kube import KubernetesSource

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DiscoveryOptions:
    kubeconfig: Path | None = None
    context: str | None = None
    host: str = "0.0.0.0"  # noqa: S104 - in a pod, proxies connect from other pods
    xds_port: int = 15010
    status_port: int = 15014
    lease: str | None = None  # leader election (status writes) on this Lease, if set
    lease_namespace: str = "istio-system"
    identity: str = ""  # this replica's name in the Lease (default: host name and pid)
    ca_dir: Path | None = (
        None  # the mesh CA's directory: mTLS xDS and PodAdmission; None: plaintext
    )
    ca_port: int = 15012
    workload_ttl: dt.timedelta = dt.timedelta(hours=24)


async def run(opts: DiscoveryOptions, stop: asyncio.Event | None = None) -> None:
    config = kubeconfig.load(opts.kubeconfig, opts.context)
    log.info("watching %s (context %s)", config.cluster.server, config.context_name)
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
    http = kubeconfig.http_client(config)
    reviews = AsyncClient(config) if opts.ca_dir is not None else None
    try:
        status = None
        tasks: list[asyncio.Task[None]] = []
        if opts.lease:
            identity = opts.identity or f"{socket.gethostname()}-{os.getpid()}"
            elector = LeaderElector(http, opts.lease_namespace, opts.lease, identity)
            tasks.append(asyncio.create_task(elector.run(), name="leader election"))
            status = StatusWriter(http, lambda: elector.is_leader, f"plait-{identity}"[:128])
        source = KubernetesSource(http, check=vet, status=status)
        platform = Platform([source], lambda _: PodAdmission(lambda: source.pods.items))
        cp = ControlPlaneOptions(
            host=opts.host,
            xds_port=opts.xds_port,
            debug_port=opts.status_port,
            security=SecurityOptions(
                ca_dir=opts.ca_dir,
                ca_port=opts.ca_port,
                workload_ttl=opts.workload_ttl,
                authenticator=TokenReviewVerifier(reviews),
            )
            if opts.ca_dir is not None and reviews is not None
            else None,
        )
        await serve(cp, stop, platform)
    finally:
        for task in tasks:  # owned here: cancelled on the way out, like the servers
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await http.aclose()
        if reviews is not None:
            await reviews.close()


def main(opts: DiscoveryOptions) -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("httpx2").setLevel(logging.WARNING)  # one line per watch otherwise
    asyncio.run(run(opts))
