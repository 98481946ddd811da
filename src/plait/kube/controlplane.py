"""Reach the control plane's status/debug HTTP port in a cluster through the API server's
service proxy (`/api/v1/namespaces/NS/services/plaitd:15014/proxy/PATH`), as istioctl
reaches istiod: `plait proxy-status|proxy-config|describe --kubeconfig` need no port
forward and no route to pods, only `get` on `services/proxy` in the control plane's
namespace (RBAC)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from plait.errors import ControlPlaneNotFoundError, KubeApiError, KubeForbiddenError

if TYPE_CHECKING:  # the HTTP stack is imported on use: the CLI imports this module
    from lightkube.config.kubeconfig import SingleConfig

DEFAULT_NAMESPACE = "istio-system"  # istioctl's --istioNamespace default
SERVICE = "plaitd"  # the chart's Service (charts/plait/templates/service.yaml)
STATUS_PORT = 15014  # its http-monitoring port: /status, /debug/config_dump


@dataclass(frozen=True)
class ControlPlane:
    """The control plane behind Service `service` in `namespace` of the cluster `config`."""

    config: SingleConfig
    namespace: str = DEFAULT_NAMESPACE
    service: str = SERVICE
    port: int = STATUS_PORT

    def url(self, path: str) -> str:
        """The API server path that proxies to `path` on the control plane."""
        return (
            f"/api/v1/namespaces/{self.namespace}/services/"
            f"{self.service}:{self.port}/proxy/{path.lstrip('/')}"
        )

    def where(self) -> str:
        return f"service {self.namespace}/{self.service}:{self.port}"

    def get_json(self, path: str, params: dict[str, str] | None = None) -> Any:
        """GET `path` from the control plane and decode its JSON; raises
        ControlPlaneNotFoundError, KubeForbiddenError or KubeApiError with one line."""
        return asyncio.run(self._get(path, params or {}))

    async def _get(self, path: str, params: dict[str, str]) -> Any:
        import httpx2 as httpx

        from plait.kube import config as kube_config

        client = kube_config.http_client(self.config)
        try:
            resp = await client.get(self.url(path), params=params)
        except httpx.HTTPError as exc:
            raise KubeApiError(f"API server {self.config.cluster.server}: {exc}") from exc
        finally:
            await client.aclose()
        if resp.status_code == 200:
            try:
                return json.loads(resp.content)
            except ValueError as exc:
                raise KubeApiError(f"{self.where()}{path}: not JSON: {exc}") from exc
        raise self._error(path, resp.status_code, resp.text)

    def _error(self, path: str, code: int, body: str) -> Exception:
        """One line for an error answer: the API server's own (a Status object) or the
        control plane's (plain text, e.g. an unknown proxy)."""
        try:
            status = json.loads(body)
        except ValueError:
            status = None
        if isinstance(status, dict) and status.get("kind") == "Status":
            message = str(status.get("message") or status.get("reason") or code)
            if code in (401, 403):
                return KubeForbiddenError(f"the API server refused: {message}")
            if code in (404, 503) or "no endpoints available" in message:
                return ControlPlaneNotFoundError(
                    f"no control plane found at {self.where()} (namespace: -i/--namespace): "
                    f"{message}"
                )
            return KubeApiError(f"{self.where()}: {message}")
        text = " ".join(body.split())[:300]  # one line, whatever answered
        if code in (502, 503):  # the API server could not connect to an endpoint
            return ControlPlaneNotFoundError(f"no control plane answers at {self.where()}: {text}")
        return KubeApiError(f"{self.where()}/{path.lstrip('/')}: {code} {text}")
