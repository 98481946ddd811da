"""Sidecar injection as one part of the Kubernetes control plane (`plait discovery`): the
webhook server (`webhook.InjectionWebhook`), the keeper of its configuration's caBundle
(`plait.kube.cabundle.CaBundleKeeper`) and the publisher of the trust bundle the injected
proxies mount (`plait.kube.rootcert.RootCertPublisher`), with settings from the chart's
`plait-sidecar-injector` ConfigMap (`plait.inject.settings_from_values`).

The webhook shares the control plane's serving certificate (its DNS SAN
`plaitd.istio-system.svc` is the name the API server calls through the chart's Service).
`start()` returns the webhook's port once it serves; the keeper and the publisher run in
tasks owned by this object until `stop()`.
"""

from __future__ import annotations

import asyncio
import contextlib

from lightkube import ApiError, AsyncClient
from lightkube.models.meta_v1 import OwnerReference
from lightkube.resources.core_v1 import ConfigMap

from plait.ca.serving import ServingCertificate
from plait.controlplane.webhook import InjectionWebhook
from plait.errors import InjectionError
from plait.inject import InjectSettings, WebhookPolicy, settings_from_values
from plait.kube.cabundle import CaBundleKeeper
from plait.kube.rootcert import RootCertPublisher

SETTINGS_CONFIGMAP = "plait-sidecar-injector"


async def settings_from_cluster(
    client: AsyncClient, namespace: str
) -> tuple[InjectSettings, WebhookPolicy]:
    """The injector's settings from the ConfigMap the chart installs in `namespace`."""
    try:
        configmap = await client.get(ConfigMap, SETTINGS_CONFIGMAP, namespace=namespace)
    except ApiError as exc:
        raise InjectionError(
            f"ConfigMap {namespace}/{SETTINGS_CONFIGMAP}: {exc.status.message}"
        ) from exc
    values = (configmap.data or {}).get("values")
    if values is None:
        raise InjectionError(f"ConfigMap {namespace}/{SETTINGS_CONFIGMAP} has no key values")
    return settings_from_values(values)


class Injection:
    """The webhook and its caBundle keeper; `start()` then `stop()`."""

    def __init__(
        self,
        serving: ServingCertificate,
        settings: InjectSettings,
        policy: WebhookPolicy,
        client: AsyncClient,
        configuration: str,
        *,
        host: str = "0.0.0.0",  # noqa: S104 - the API server calls from outside the pod
        port: int = 15017,
        keep_interval: float = 10.0,
        owner: OwnerReference | None = None,
    ) -> None:
        self.webhook = InjectionWebhook(serving, settings, policy, host=host, port=port)
        bundle = serving.ca.trust_bundle
        self.keeper = CaBundleKeeper(
            client, configuration, lambda: "".join(bundle()).encode(), interval=keep_interval
        )
        self.publisher = RootCertPublisher(
            client, lambda: "".join(bundle()), interval=keep_interval, owner=owner
        )
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> int:
        port = await self.webhook.start()
        # Owner: this object (`stop` cancels them); each `run` logs failures, never ends.
        self._tasks = [
            asyncio.create_task(self.keeper.run(), name="webhook-cabundle"),
            asyncio.create_task(self.publisher.run(), name="root-cert-publisher"),
        ]
        return port

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        await self.webhook.stop()
