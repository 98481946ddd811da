"""One proxy's agent: its certificate, the SDS server that hands it to Envoy, and Envoy.

Order matters both ways. `start()`: the first certificate (so the key exists and the CA
has vouched for it), then the SDS server (Envoy's bootstrap names its socket, and with
xDS over mTLS Envoy cannot reach the control plane before SDS answers), then Envoy.
`stop()`: Envoy first (it drains while its certificate is still served), then SDS, then
the certificate manager. A failed `start()` stops whatever it had started.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from plait.agent.bootstrap import BootstrapOptions, XdsProtocol
from plait.agent.identity import CaClientOptions, CertificateManager
from plait.agent.lifecycle import StartStop
from plait.agent.sds import SdsServer
from plait.agent.supervisor import EnvoySupervisor, SupervisorOptions
from plait.model.identity import control_plane_identity
from plait.model.proxy import Proxy


@dataclass(frozen=True)
class SidecarOptions:
    """Everything one proxy's agent needs.

    `ca.identity` must be the proxy's own identity (its namespace and service account):
    the xDS server refuses a proxy whose certificate names someone else. `xds_tls`
    False keeps xDS in plaintext (SDS is still served, for the listeners' mTLS).
    `sds_socket` must stay under 100 bytes (a Unix socket path limit).
    """

    proxy: Proxy
    run_dir: Path
    ca: CaClientOptions
    sds_socket: Path
    xds_host: str
    xds_port: int
    xds_tls: bool = True
    name: str | None = None
    admin_port: int = 0
    admin_host: str = "127.0.0.1"
    concurrency: int = 1
    supervisor: SupervisorOptions | None = None
    prometheus_port: int | None = None
    xds_protocol: XdsProtocol = XdsProtocol.DELTA

    def __post_init__(self) -> None:
        who = self.ca.identity
        if (who.namespace, who.service_account) != (
            self.proxy.namespace,
            self.proxy.service_account,
        ):
            raise ValueError(
                f"proxy {self.proxy.id} runs as {self.proxy.namespace}/"
                f"{self.proxy.service_account}, but its certificate would name {who}"
            )

    def bootstrap(self) -> BootstrapOptions:
        """The Envoy bootstrap options: SDS from the agent, mTLS to xDS if `xds_tls`."""
        server = control_plane_identity(self.ca.identity.trust_domain)
        return BootstrapOptions(
            proxy=self.proxy,
            admin_port=self.admin_port,
            admin_host=self.admin_host,
            xds_host=self.xds_host,
            xds_port=self.xds_port,
            concurrency=self.concurrency,
            sds_socket=str(self.sds_socket),
            xds_identity=server if self.xds_tls else None,
            prometheus_port=self.prometheus_port,
            xds_protocol=self.xds_protocol,
        )


class SidecarAgent(StartStop):
    """Certificate manager + SDS server + supervised Envoy for one proxy."""

    def __init__(self, options: SidecarOptions) -> None:
        self.options = options
        self.certificates = CertificateManager(options.ca)
        self.sds = SdsServer(self.certificates, options.sds_socket)
        self.envoy = EnvoySupervisor(
            options.bootstrap(), options.run_dir, name=options.name, options=options.supervisor
        )

    async def start(self) -> None:
        """First certificate, SDS, then Envoy (returns once Envoy's admin API listens).

        Raises WorkloadCertificateError (no certificate from the CA), EnvoyError, or
        OSError (the SDS socket); nothing is left running then.
        """
        try:
            await self.certificates.start()
            await self.sds.start()
            await self.envoy.start()
        except BaseException:
            await self.stop()
            raise

    async def wait_ready(self, timeout: float) -> None:
        """Wait until Envoy is configured (see `EnvoySupervisor.wait_ready`)."""
        await self.envoy.wait_ready(timeout)

    async def stop(self) -> None:
        """Envoy (drained), then SDS, then the certificate manager; idempotent."""
        try:
            await self.envoy.stop()
        finally:
            try:
                await self.sds.stop()
            finally:
                await self.certificates.stop()
