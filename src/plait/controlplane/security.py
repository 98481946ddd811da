"""The control plane's security parts: the mesh CA, its HTTPS CSR service, the mTLS
credentials of the ADS port and local mode's admission of a proxy's node
(`DeploymentAdmission`, a `xds.auth.ProxyAdmission`; Kubernetes mode brings its own).

Trust is bootstrapped from files in the CA directory (local mode: MESHDIR/.plait/ca):
the CA is created on first start (or the user's plugged-in CA is loaded), the root
certificate is written next to it for agents to trust the CA's HTTPS port, and workload
tokens are verified with the public key of whoever mints them (`plait up`; see
docs/security.md). The ADS port and the CA port present the same serving certificate,
issued by the CA to `spiffe://TD/ns/istio-system/sa/plaitd` and re-issued at half-life
or when the trust bundle changes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plait.api import KubeDeployment, Loaded, of_kind
from plait.ca import CaServer, CertificateAuthority, ServingCertificate, TokenVerifier
from plait.ca.tokens import Authenticator
from plait.model.identity import CONTROL_PLANE_HOST, SpiffeId
from plait.model.proxy import Proxy, ProxyKind
from plait.xds.auth import ProxyAdmission, ServerTls

GATEWAY_WORKLOAD = "istio-ingressgateway"


@dataclass(frozen=True)
class SecurityOptions:
    """`token_public_key` (local mode: the PEM Ed25519 key of the token issuer) or an
    `authenticator` (Kubernetes: `plait.ca.kubetokens.TokenReviewVerifier`), not both."""

    ca_dir: Path
    token_public_key: Path | None = None
    ca_port: int = 0
    workload_ttl: dt.timedelta = dt.timedelta(hours=24)
    authenticator: Authenticator | None = None

    def __post_init__(self) -> None:
        if (self.token_public_key is None) == (self.authenticator is None):
            raise ValueError("SecurityOptions needs token_public_key or authenticator, not both")


class MeshSecurity:
    """The CA and the servers that use its credentials; `start()` then `stop()`."""

    def __init__(self, opts: SecurityOptions, trust_domain: str, host: str) -> None:
        self.trust_domain = trust_domain
        self.ca = CertificateAuthority.load(
            opts.ca_dir, trust_domain, workload_ttl=opts.workload_ttl, create=True
        )
        # DNS names: `localhost` for the CA's HTTPS clients, the xDS SNI Envoys send
        self.serving = ServingCertificate(self.ca, dns=("localhost", CONTROL_PLANE_HOST))
        verifier: Authenticator
        if opts.authenticator is not None:
            verifier = opts.authenticator
        else:
            assert opts.token_public_key is not None  # __post_init__
            verifier = TokenVerifier(opts.token_public_key.read_bytes())
        self.server = CaServer(
            self.ca, verifier, host=host, port=opts.ca_port, serving=self.serving
        )

    def xds_tls(self, admission: ProxyAdmission) -> ServerTls:
        """The ADS port's mTLS, admitting nodes through the platform's `admission`."""
        return ServerTls(
            credentials=self.serving.current, trust_domain=self.trust_domain, admission=admission
        )

    async def start(self) -> int:
        return await self.server.start()

    async def stop(self) -> None:
        await self.server.stop()

    def status(self) -> dict[str, Any]:
        """For `/status`: the CA's certificates with their expiry, warnings, counters."""
        return {
            **self.ca.describe().to_json(),
            "url": self.server.url,
            "counters": self.server.counters(),
        }


class DeploymentAdmission:
    """Local mode's `ProxyAdmission`: admit a node only as a workload that the config
    declares for its identity, a Deployment in its namespace running as its service
    account with the labels it claims (or the ingress gateway). The certificate already
    proved namespace and service account; this stops a workload from taking another's
    name and labels (and so its inbound configuration) within the same service account.
    `config` is read on each new stream, so a Deployment added since is admitted."""

    def __init__(self, config: Callable[[], Sequence[Loaded]]) -> None:
        self._config = config

    def admit(self, identity: SpiffeId, proxy: Proxy) -> str | None:
        if proxy.kind is ProxyKind.GATEWAY:
            return None if proxy.workload == GATEWAY_WORKLOAD else "unknown gateway"
        for item in of_kind(self._config(), KubeDeployment):
            dep = item.resource
            if (dep.metadata.namespace, dep.metadata.name) != (proxy.namespace, proxy.workload):
                continue
            template = dep.spec.template
            account = template.spec.service_account_name or "default"
            labels = dict(template.metadata.labels) if template.metadata else {}
            if account != identity.service_account:
                return f"Deployment {proxy.workload} runs as {account}, not {identity}"
            if labels != proxy.labels.as_dict():
                return f"labels {proxy.labels.as_dict()} are not Deployment {proxy.workload}'s"
            return None
        return f"no Deployment {proxy.namespace}/{proxy.workload} in the mesh's config"


def workload_check(config: Callable[[], Sequence[Loaded]]) -> ProxyAdmission:
    """Local mode's admission over the mesh's current config (`DeploymentAdmission`)."""
    return DeploymentAdmission(config)
