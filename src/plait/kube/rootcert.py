"""Publishes the mesh's trust bundle to every namespace as the ConfigMap
`istio-ca-root-cert` (key `root-cert.pem`), as istiod's namespace controller does, so an
injected proxy can trust the mesh CA before it has a certificate (the injector mounts it
at /var/run/secrets/istio).

`sync_once` lists the namespaces and server-side-applies the ConfigMap in each one whose
copy differs (field manager `plaitd`: a user's extra keys or labels are left alone);
`run` repeats it every `interval`, so a new namespace and a rotated bundle are covered
within that time. A namespace being deleted refuses writes (403 "being terminated", or
404): skipped, not an error. Other failures are logged and retried; they never end `run`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from lightkube import ApiError, AsyncClient
from lightkube.models.meta_v1 import ObjectMeta, OwnerReference
from lightkube.resources.core_v1 import ConfigMap, Namespace
from lightkube.types import PatchType

log = logging.getLogger(__name__)

NAME = "istio-ca-root-cert"
KEY = "root-cert.pem"
FIELD_MANAGER = "plaitd"


class RootCertPublisher:
    """Keeps `istio-ca-root-cert` equal to `bundle()` (PEM text) in every namespace."""

    def __init__(
        self,
        client: AsyncClient,
        bundle: Callable[[], str],
        *,
        interval: float = 10.0,
        owner: OwnerReference | None = None,
    ) -> None:
        self.client, self.bundle, self.interval = client, bundle, interval
        self.owners = [owner] if owner is not None else None  # see plait.kube.owner
        self.writes = 0

    def __repr__(self) -> str:
        return f"RootCertPublisher(every {self.interval:.0f} s)"

    async def sync_once(self) -> int:
        """Write the ConfigMap where it is missing or stale; the number written."""
        pem = self.bundle()
        current = {
            cm.metadata.namespace: (cm.data or {}).get(KEY)
            async for cm in self.client.list(
                ConfigMap, namespace="*", fields={"metadata.name": NAME}
            )
            if cm.metadata is not None
        }
        written = 0
        async for ns in self.client.list(Namespace):
            name = ns.metadata.name if ns.metadata else None
            if name is None or current.get(name) == pem:
                continue
            if ns.status is not None and ns.status.phase == "Terminating":
                continue
            configmap = ConfigMap(
                metadata=ObjectMeta(
                    name=NAME,
                    namespace=name,
                    labels={"istio.io/config": "true"},
                    ownerReferences=self.owners,
                ),
                data={KEY: pem},
            )
            try:
                await self.client.patch(
                    ConfigMap, NAME, configmap, namespace=name,
                    patch_type=PatchType.APPLY, field_manager=FIELD_MANAGER, force=True,
                )  # fmt: skip
            except ApiError as exc:
                message = exc.status.message or ""
                if exc.status.code == 404 or "being terminated" in message:
                    continue  # the namespace is going away
                raise
            written += 1
        self.writes += written
        return written

    async def run(self) -> None:
        """`sync_once` every `interval` seconds until cancelled."""
        while True:
            try:
                await self.sync_once()
            except Exception as exc:  # the API server away: keep trying
                log.warning("publishing %s: %s: %s", NAME, type(exc).__name__, exc)
            await asyncio.sleep(self.interval)
