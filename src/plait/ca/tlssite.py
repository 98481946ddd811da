"""An aiohttp app served over HTTPS with a serving certificate of the mesh CA.

Rotation: a background task (owned by the site: `stop` cancels it) checks every
`check_interval` seconds whether the CA files changed or the certificate was re-issued,
and loads a new chain into the same SSLContext, which new handshakes use; connections
already open keep theirs. A failed check is logged and tried again at the next interval,
so the task never ends on its own (a dead loop would let the certificate expire).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
import tempfile
from pathlib import Path

from aiohttp import web

from plait.ca.serving import ServingCertificate, ServingCredentials

log = logging.getLogger(__name__)


class TlsSite:
    """Serves one `web.AppRunner` on host:port with `serving`'s rotating certificate."""

    def __init__(self, serving: ServingCertificate, name: str, check_interval: float) -> None:
        self.serving = serving
        self.name = name  # for logs and the task's name
        self.check_interval = check_interval
        self._ssl: ssl.SSLContext | None = None
        self._loaded_version = 0
        self._runner: web.AppRunner | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self, runner: web.AppRunner, host: str, port: int) -> int:
        """Serve `runner` (not yet set up); returns the bound port."""
        self._ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._ssl.minimum_version = ssl.TLSVersion.TLSv1_2
        self.refresh()
        self._runner = runner
        await runner.setup()
        site = web.TCPSite(runner, host, port, ssl_context=self._ssl)
        await site.start()
        sockets = getattr(site._server, "sockets", None) or []
        if sockets:
            port = int(sockets[0].getsockname()[1])
        self._task = asyncio.create_task(self._maintain(), name=f"{self.name}-tls")
        return port

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def refresh(self) -> None:
        """Load the current serving certificate if it is not the one loaded."""
        creds = self.serving.current()
        if creds.version != self._loaded_version and self._ssl is not None:
            load_chain(self._ssl, creds)
            self._loaded_version = creds.version
            log.info(
                "%s: serving certificate v%d until %s", self.name, creds.version, creds.not_after
            )

    async def _maintain(self) -> None:
        while True:
            await asyncio.sleep(self.check_interval)
            try:
                self.serving.ca.reload_if_changed()
                self.refresh()
            except Exception as exc:  # keep trying: a dead loop would let the cert expire
                log.warning(
                    "%s: could not renew its serving certificate: %s: %s",
                    self.name,
                    type(exc).__name__,
                    exc,
                )


def load_chain(context: ssl.SSLContext, creds: ServingCredentials) -> None:
    """`load_cert_chain` only reads files: hand it the PEMs through an anonymous memory
    file (Linux memfd) or, elsewhere, a 0600 file in a fresh 0700 directory, removed at
    once."""
    data = creds.chain_pem + creds.key_pem
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("plait-serving", 0)
        try:
            os.write(fd, data)
            context.load_cert_chain(f"/proc/self/fd/{fd}")
            return
        except OSError:
            pass  # no /proc: use a private temporary file
        finally:
            os.close(fd)
    with tempfile.TemporaryDirectory(prefix="plait-ca-") as tmp:
        path = Path(tmp) / "serving.pem"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        context.load_cert_chain(path)
