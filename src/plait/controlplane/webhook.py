"""The sidecar injection webhook, served over HTTPS by the control plane.

    POST /inject   an admission.k8s.io/v1 AdmissionReview → the AdmissionReview answer
                   (`plait.inject.review`: JSONPatch for an injected pod)
    GET  /ready    200 once serving

The decision is `plait.inject.review` (pure); this module is only its HTTPS front. A
body that is not an AdmissionReview gets a 400 and is logged without its content; the
API server then applies the webhook's failurePolicy (docs/kubernetes.md).

TLS: the serving certificate comes from the mesh CA (`ServingCertificate`, with the DNS
names the API server calls, e.g. `plaitd.istio-system.svc`, and the IPs); a background
task loads a re-issued chain into the same SSLContext, which new handshakes use. The API
server verifies it against the caBundle of the MutatingWebhookConfiguration, which
`plait.kube.cabundle` keeps equal to the mesh's trust bundle.
"""

from __future__ import annotations

import collections
import json
import logging

from aiohttp import web

from plait.ca.serving import ServingCertificate
from plait.ca.tlssite import TlsSite
from plait.inject import InjectSettings, WebhookPolicy, review

log = logging.getLogger(__name__)

MAX_BODY = 6 * 1024 * 1024
"""Larger than any Pod the API server accepts (etcd's request limit is 1.5 MiB)."""


class InjectionWebhook:
    """HTTPS server of the injector; `start()` returns the bound port, `stop()` ends it."""

    def __init__(
        self,
        serving: ServingCertificate,
        settings: InjectSettings,
        policy: WebhookPolicy | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        check_interval: float = 5.0,
    ) -> None:
        self.serving = serving
        self.settings = settings
        self.policy = policy or WebhookPolicy()
        self.host, self.port = host, port
        self.answers: collections.Counter[str] = collections.Counter()
        self._site = TlsSite(serving, "webhook", check_interval)

    def __repr__(self) -> str:
        return f"InjectionWebhook({self.host}:{self.port})"

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    async def start(self) -> int:
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_post("/inject", self._inject)
        app.router.add_get("/ready", self._ready)
        runner = web.AppRunner(app, access_log=None)
        self.port = await self._site.start(runner, self.host, self.port)
        return self.port

    async def stop(self) -> None:
        await self._site.stop()

    async def _ready(self, _request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _inject(self, request: web.Request) -> web.Response:
        try:
            body = json.loads(await request.read())
            answer = review(body, self.settings, self.policy)
        except Exception as exc:  # bad input (or a bug) is a 400 here, never a 500
            self.answers["bad_request"] += 1
            log.warning("webhook: not an AdmissionReview (%s)", type(exc).__name__)
            return web.json_response(
                {"error": "not an admission.k8s.io/v1 AdmissionReview"}, status=400
            )
        response = answer["response"]
        outcome = (
            "refused"
            if not response["allowed"]
            else "injected"
            if "patch" in response
            else "skipped"
        )
        self.answers[outcome] += 1
        if outcome == "refused":
            log.info("webhook: refused a pod: %s", response["status"]["message"])
        return web.json_response(answer)
