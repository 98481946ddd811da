"""A real mesh CA (plait.ca) on 127.0.0.1 for agent tests, with a token minter.

Importable from every test directory (tests/conftest.py puts tests/ on sys.path).
Use `async with MeshCa(directory) as ca:`; `ca.options(identity)` gives an agent's
CaClientOptions with a token minted for that identity (or for `token_for`).
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

from plait.agent.identity import CaClientOptions
from plait.agent.lifecycle import StartStop
from plait.ca import CaServer, CertificateAuthority, TokenIssuer, TokenVerifier
from plait.model.identity import SpiffeId

TRUST_DOMAIN = "cluster.local"


class MeshCa(StartStop):
    """CA files in `directory`/ca, tokens in `directory`/tokens, the HTTPS API started."""

    def __init__(self, directory: Path, workload_ttl_s: int = 3600) -> None:
        self.directory = directory
        self.ca = CertificateAuthority.load(
            directory / "ca",
            TRUST_DOMAIN,
            workload_ttl=datetime.timedelta(seconds=workload_ttl_s),
            create=True,
        )
        self.issuer = TokenIssuer.generate()
        self.server = CaServer(self.ca, TokenVerifier(self.issuer.public_key_pem))
        self.url = ""
        self._tokens = 0

    @property
    def root_file(self) -> Path:
        return self.directory / "ca" / "root-cert.pem"

    def token(self, identity: SpiffeId, ttl_s: int = 3600) -> Path:
        """A token file proving `identity` (its namespace and service account)."""
        self._tokens += 1
        path = self.directory / "tokens" / f"t{self._tokens}.jwt"
        path.parent.mkdir(parents=True, exist_ok=True)
        token = self.issuer.mint(
            identity.namespace,
            identity.service_account,
            f"{identity.service_account}-{self._tokens}",
            datetime.timedelta(seconds=ttl_s),
        )
        path.write_text(token)
        path.chmod(0o600)
        return path

    def options(
        self, identity: SpiffeId, token_for: SpiffeId | None = None, **kw: Any
    ) -> CaClientOptions:
        return CaClientOptions(
            ca_url=self.url,
            ca_root_file=self.root_file,
            token_file=self.token(token_for or identity),
            identity=identity,
            **kw,
        )

    async def start(self) -> None:
        await self.server.start()
        self.url = self.server.url

    async def stop(self) -> None:
        await self.server.stop()
