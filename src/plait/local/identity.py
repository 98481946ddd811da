"""Workload identity in local mode: `plait up` plays the part Kubernetes plays for Istio.

- It holds the key that signs workload tokens (`.plait/tokens/issuer-key.pem`, 0600), as
  the Kubernetes API server signs service-account tokens; the control plane gets only the
  public key, so it can check tokens but not make them.
- It writes each replica's token to `.plait/tokens/INSTANCE.jwt` (0600), as the kubelet
  mounts a projected token into a pod, and re-mints the tokens before they expire.
- It gives each replica's agent the CA's address, the root that signed the CA's HTTPS
  certificate, and a Unix socket for SDS in a private (0700) directory with a short path
  (socket paths are limited to about 100 bytes).
Keys of workload certificates are made by the agents and never touch the disk.
"""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
from pathlib import Path

from plait.agent.identity import CaClientOptions
from plait.ca import TokenIssuer
from plait.ca.files import ensure_private_dir, write_private
from plait.model.identity import SpiffeId
from plait.model.proxy import Proxy

TOKEN_TTL = dt.timedelta(hours=24)
TOKEN_REFRESH_S = 3600.0
"""Tokens are re-minted hourly, well before their 24 h expiry (as the kubelet does)."""

BUNDLE_POLL_S = 5.0
"""How often agents fetch the trust bundle: a root rotation step reaches every agent
within this many seconds."""


class LocalIdentity:
    def __init__(
        self,
        run_dir: Path,
        trust_domain: str,
        cert_ttl: dt.timedelta,
        ca_dir: Path | None = None,
    ) -> None:
        self.ca_dir = ca_dir or run_dir / "ca"
        self.tokens_dir = run_dir / "tokens"
        ensure_private_dir(self.tokens_dir)
        self.issuer = TokenIssuer.load_or_create(self.tokens_dir / "issuer-key.pem")
        self.public_key = self.tokens_dir / "issuer-public.pem"
        self.public_key.write_bytes(self.issuer.public_key_pem)
        self.trust_domain = trust_domain
        self.cert_ttl = cert_ttl
        self._sockets: Path | None = None
        self._issued: dict[str, tuple[str, str, Path]] = {}  # instance -> (ns, sa, file)

    def token_file(self, instance: str, namespace: str, service_account: str) -> Path:
        path = self.tokens_dir / f"{instance}.jwt"
        self._issued[instance] = (namespace, service_account, path)
        self._mint(instance, namespace, service_account, path)
        return path

    def refresh_tokens(self) -> None:
        for instance, (ns, sa, path) in list(self._issued.items()):
            if path.exists():
                self._mint(instance, ns, sa, path)

    def forget(self, instance: str) -> None:
        """A replica is gone: its token is removed, so nothing can use it any more."""
        entry = self._issued.pop(instance, None)
        if entry is not None:
            entry[2].unlink(missing_ok=True)

    def _mint(self, instance: str, namespace: str, service_account: str, path: Path) -> None:
        token = self.issuer.mint(namespace, service_account, instance, TOKEN_TTL)
        write_private(path, token.encode())

    def ca_options(self, proxy: Proxy, token_file: Path, ca_url: str) -> CaClientOptions:
        return CaClientOptions(
            ca_url=ca_url,
            ca_root_file=self.ca_dir / "root-cert.pem",
            token_file=token_file,
            identity=SpiffeId(self.trust_domain, proxy.namespace, proxy.service_account),
            ttl_s=int(self.cert_ttl.total_seconds()),
            bundle_poll_s=BUNDLE_POLL_S,
        )

    def sds_socket(self, name: str) -> Path:
        if self._sockets is None:
            # a fresh private directory with an unpredictable name, made atomically by
            # mkdtemp (a predictable one could be made first by another user, who could
            # then swap the sockets); removed by `cleanup`
            self._sockets = Path(tempfile.mkdtemp(prefix="plait-sds-"))
        return self._sockets / f"{name}.sock"

    def cleanup(self) -> None:
        if self._sockets is not None:
            shutil.rmtree(self._sockets, ignore_errors=True)
