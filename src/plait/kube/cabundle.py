"""Keeps the injector's MutatingWebhookConfiguration trusting the mesh CA.

The API server checks the webhook's serving certificate against each webhook's
`clientConfig.caBundle`. That certificate comes from the mesh CA, so the bundle must be the
mesh's trust bundle, and must follow it through a root rotation (`plait ca rotate-root`
adds the new root before it signs with it, so a bundle with both roots keeps the webhook
callable throughout). `sync_once` compares and patches; `run` does it every `interval`.

The patch is a JSON patch that first `test`s the resourceVersion it read, so a concurrent
writer (helm upgrade, another control-plane replica) makes it fail and retry next round
rather than overwrite. Failures (API server away, no configuration yet: the chart creates
it) are logged and retried; they never end `run`. While the bundle is stale the API server
cannot call the webhook and the configuration's failurePolicy decides (docs/kubernetes.md).
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Callable

from lightkube import ApiError, AsyncClient
from lightkube.resources.admissionregistration_v1 import MutatingWebhookConfiguration
from lightkube.types import PatchType

log = logging.getLogger(__name__)


class CaBundleKeeper:
    """Keeps every webhook of configuration `name` at `bundle()` (PEM bytes)."""

    def __init__(
        self,
        client: AsyncClient,
        name: str,
        bundle: Callable[[], bytes],
        *,
        interval: float = 10.0,
    ) -> None:
        self.client, self.name, self.bundle = client, name, bundle
        self.interval = interval
        self.patches = 0

    def __repr__(self) -> str:
        return f"CaBundleKeeper({self.name!r})"

    async def sync_once(self) -> bool:
        """Patch the webhooks whose caBundle differs; True if a patch was made."""
        wanted = base64.b64encode(self.bundle()).decode()
        config = await self.client.get(MutatingWebhookConfiguration, self.name)
        assert config.metadata is not None
        ops: list[dict[str, object]] = [
            {"op": "test", "path": "/metadata/resourceVersion",
             "value": config.metadata.resourceVersion},
        ]  # fmt: skip
        for index, hook in enumerate(config.webhooks or []):
            if hook.clientConfig.caBundle != wanted:
                ops.append(
                    {"op": "add", "path": f"/webhooks/{index}/clientConfig/caBundle",
                     "value": wanted}
                )  # fmt: skip
        if len(ops) == 1:
            return False
        await self.client.patch(
            MutatingWebhookConfiguration, self.name, ops, patch_type=PatchType.JSON
        )
        self.patches += 1
        log.info(
            "webhook configuration %s: caBundle updated (%d webhooks)", self.name, len(ops) - 1
        )
        return True

    async def run(self) -> None:
        """`sync_once` every `interval` seconds until cancelled."""
        while True:
            try:
                await self.sync_once()
            except ApiError as exc:
                log.warning(
                    "webhook configuration %s: %s (retrying in %.0f s)",
                    self.name,
                    exc.status.message,
                    self.interval,
                )
            except Exception as exc:  # the API server away: keep trying
                log.warning("webhook configuration %s: %s: %s", self.name, type(exc).__name__, exc)
            await asyncio.sleep(self.interval)
