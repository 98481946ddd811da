"""`plait discovery`: the control plane of a Kubernetes cluster, as istiod is.

The same process as local mode's (`controlplane.main.serve`: pipeline, xDS, status) on
another platform: the Kubernetes source instead of the mesh directory and registry, and
`PodAdmission` for proxies. The cluster is found by kubectl's rules (`plait.kube.config`:
`--kubeconfig`, `--context`, `KUBECONFIG`, `~/.kube/config`, in-cluster in a pod).

In the chart's pod (docs/kubernetes.md, "The control plane in a pod"): the CA directory is
an emptyDir restored from a Secret before the CA loads (`plait.ca.kubesecret`); the
injector (`controlplane.injection`) serves with the CA's serving certificate, its settings
read from the chart's ConfigMap; what the control plane creates names the chart's
ClusterRole as owner (`plait.kube.owner`), so `helm uninstall` takes it away too.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import signal
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from lightkube import AsyncClient
from lightkube.models.meta_v1 import OwnerReference

from plait.analysis import vet
from plait.ca import kubesecret
from plait.ca.kubetokens import TokenReviewVerifier
from plait.controlplane.injection import SETTINGS_CONFIGMAP, Injection, settings_from_cluster
from plait.controlplane.kubeadmission import PodAdmission
from plait.controlplane.main import ControlPlaneOptions, Part, Platform, serve
from plait.controlplane.security import MeshSecurity, SecurityOptions
from plait.kube import config as kubeconfig
from plait.kube import owner
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
    lease_namespace: str | None = None  # default: `namespace`
    identity: str = ""  # this replica's name in the Lease (default: host name and pid)
    ca_dir: Path | None = (
        None  # the mesh CA's directory: mTLS xDS and PodAdmission; None: plaintext
    )
    ca_port: int = 15012
    workload_ttl: dt.timedelta = dt.timedelta(hours=24)
    namespace: str = "istio-system"  # the control plane's own (its Secret, ConfigMaps)
    ca_secret: str | None = None  # keep the CA in this Secret (needs ca_dir)
    webhook_port: int | None = None  # serve the injection webhook (needs ca_dir)
    owner: str | None = None  # the ClusterRole that owns what this process creates

    def __post_init__(self) -> None:
        if (self.ca_secret is not None or self.webhook_port is not None) and self.ca_dir is None:
            raise ValueError("a CA Secret and the webhook need the CA directory (ca_dir)")


async def _platform(
    opts: DiscoveryOptions, client: AsyncClient, source: KubernetesSource,
    owner_ref: OwnerReference | None,
) -> Platform:  # fmt: skip
    """The Kubernetes platform: its source, PodAdmission, the CA's Secret, the injector."""

    async def restore_ca(trust_domain: str) -> None:
        assert opts.ca_dir is not None and opts.ca_secret is not None
        await kubesecret.restore(
            client, opts.namespace, opts.ca_secret, opts.ca_dir, trust_domain, owner_ref
        )

    injector = None
    if opts.webhook_port is not None:
        injector = await settings_from_cluster(client, opts.namespace)
    configuration = f"{SETTINGS_CONFIGMAP}-{opts.namespace}"  # the chart's name for it

    def parts(security: MeshSecurity) -> Sequence[Part]:
        if injector is None or opts.webhook_port is None:
            return ()
        settings, policy = injector
        return [
            Injection(security.serving, settings, policy, client, configuration,
                      host=opts.host, port=opts.webhook_port, owner=owner_ref)
        ]  # fmt: skip

    return Platform(
        [source],
        lambda _: PodAdmission(lambda: source.pods.items),
        restore_ca=restore_ca if opts.ca_secret is not None else None,
        parts=parts,
    )


async def run(opts: DiscoveryOptions, stop: asyncio.Event | None = None) -> None:
    config = kubeconfig.load(opts.kubeconfig, opts.context)
    log.info("watching %s (context %s)", config.cluster.server, config.context_name)
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
    http = kubeconfig.http_client(config)
    client = AsyncClient(config, field_manager="plaitd")
    tasks: list[asyncio.Task[None]] = []
    try:
        owner_ref = await owner.cluster_role_owner(client, opts.owner) if opts.owner else None
        status = None
        if opts.lease:
            identity = opts.identity or f"{socket.gethostname()}-{os.getpid()}"
            elector = LeaderElector(
                http, opts.lease_namespace or opts.namespace, opts.lease, identity,
                owners=owner.as_json(owner_ref),
            )  # fmt: skip
            tasks.append(asyncio.create_task(elector.run(), name="leader election"))
            status = StatusWriter(http, lambda: elector.is_leader, f"plait-{identity}"[:128])
        source = KubernetesSource(http, check=vet, status=status)
        platform = await _platform(opts, client, source, owner_ref)
        cp = ControlPlaneOptions(
            host=opts.host,
            xds_port=opts.xds_port,
            debug_port=opts.status_port,
            security=SecurityOptions(
                ca_dir=opts.ca_dir,
                ca_port=opts.ca_port,
                workload_ttl=opts.workload_ttl,
                authenticator=TokenReviewVerifier(client),
            )
            if opts.ca_dir is not None
            else None,
        )
        await serve(cp, stop, platform)
    finally:
        for task in tasks:  # owned here: cancelled on the way out, like the servers
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await http.aclose()
        await client.close()


def main(opts: DiscoveryOptions) -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("httpx2").setLevel(logging.WARNING)  # one line per watch otherwise
    asyncio.run(run(opts))
