"""`plait proxy sidecar|router`: the proxy in a Kubernetes pod (`plait.agent.pod`).

`sidecar` is what the injected `istio-proxy` container runs; `router` is the gateway
Deployment's container. Both run until SIGTERM (Envoy drains first).

Exit codes: 0 stopped by a signal; 2 a setting is missing or malformed (the message
names the variable or flag); 4 the proxy could not start (the control plane's name does
not resolve, no certificate from the CA within --start-timeout, Envoy would not run):
the kubelet restarts the container.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from plait.cli import exitcodes

if TYPE_CHECKING:
    from plait.podproxy import PodProxyOptions

app = typer.Typer(
    help="The proxy in a Kubernetes pod: agent (certificate, SDS) and Envoy.",
    no_args_is_help=True,
)
err = Console(stderr=True, soft_wrap=True)

XdsOpt = Annotated[str, typer.Option(help="The control plane's xDS HOST:PORT (mTLS).")]
CaOpt = Annotated[str, typer.Option(help="The mesh CA's https://HOST:PORT.")]
TrustDomainOpt = Annotated[str, typer.Option(help="The mesh's trust domain.")]
TokenOpt = Annotated[
    Path, typer.Option(help="The projected service-account token (audience plait-ca).")
]
RootOpt = Annotated[Path, typer.Option(help="The mesh root certificate, to trust the CA.")]
RunDirOpt = Annotated[
    Path, typer.Option(help="Where Envoy's bootstrap, log and the SDS socket go.")
]
ConcurrencyOpt = Annotated[int, typer.Option(min=1, help="Envoy worker threads.")]
StartTimeoutOpt = Annotated[
    float, typer.Option(help="Seconds to wait for the first certificate before exiting.")
]
LogLevelOpt = Annotated[str, typer.Option(help="Envoy's log level.")]
HealthPortOpt = Annotated[
    int, typer.Option(help="The status port serving /healthz/ready (0: any free port).")
]


def _ports(items: list[str]) -> tuple[tuple[int, int], ...]:
    out = []
    for item in items:
        port, sep, target = item.partition(":")
        if not port.isdigit() or (sep and not target.isdigit()):
            raise typer.BadParameter(f"'{item}' is not PORT or PORT:CONTAINER_PORT")
        pair = (int(port), int(target) if sep else int(port))
        if not all(0 < p <= 65535 for p in pair):
            raise typer.BadParameter(f"'{item}': not a port number")
        out.append(pair)
    return tuple(sorted(out))


def _run(opts: PodProxyOptions) -> None:
    from plait.errors import EnvoyError, PodProxyError, WorkloadCertificateError
    from plait.podproxy import PodProxy, pod_info
    from plait.podproxy.settings import sidecar_options

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        pod = pod_info(os.environ)
        sidecar_options(opts, pod, "127.0.0.1")  # every setting checked before anything runs
    except PodProxyError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(exitcodes.USAGE) from None

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await PodProxy(opts, pod).run(stop)

    try:
        asyncio.run(main())
    except (PodProxyError, WorkloadCertificateError, EnvoyError, OSError) as exc:
        err.print(f"[red]error:[/red] the proxy could not start: {exc}")
        raise typer.Exit(exitcodes.STARTUP_FAILED) from None


@app.command()
def sidecar(
    xds_address: XdsOpt = "plaitd.istio-system.svc:15010",
    ca_address: CaOpt = "https://plaitd.istio-system.svc:15012",
    trust_domain: TrustDomainOpt = "cluster.local",
    token_file: TokenOpt = Path("/var/run/secrets/tokens/plait-token"),
    ca_root_file: RootOpt = Path("/var/run/secrets/istio/root-cert.pem"),
    run_dir: RunDirOpt = Path("/var/run/plait"),
    concurrency: ConcurrencyOpt = 2,
    start_timeout: StartTimeoutOpt = 30.0,
    log_level: LogLevelOpt = "warning",
    health_port: HealthPortOpt = 15021,
) -> None:
    """A pod's sidecar: captured traffic (outbound 15001, inbound 15006), health on
    15021, metrics on 15020 (Envoy's own on 15090). Reads POD_NAME, POD_NAMESPACE, INSTANCE_IP, SERVICE_ACCOUNT
    and the injector's ISTIO_META_* variables."""
    from plait.model.proxy import ProxyKind
    from plait.podproxy import PodProxyOptions

    _run(
        PodProxyOptions(
            ProxyKind.SIDECAR, xds_address, ca_address, trust_domain, token_file,
            ca_root_file, run_dir=run_dir, concurrency=concurrency, health_port=health_port,
            start_timeout_s=start_timeout, envoy_log_level=log_level,
        )
    )  # fmt: skip


@app.command()
def router(
    xds_address: XdsOpt = "plaitd.istio-system.svc:15010",
    ca_address: CaOpt = "https://plaitd.istio-system.svc:15012",
    trust_domain: TrustDomainOpt = "cluster.local",
    token_file: TokenOpt = Path("/var/run/secrets/tokens/plait-token"),
    ca_root_file: RootOpt = Path("/var/run/secrets/istio/root-cert.pem"),
    run_dir: RunDirOpt = Path("/var/run/plait"),
    port: Annotated[
        list[str] | None,
        typer.Option(
            help="A Gateway server port and the container port it is served on, "
            "PORT:CONTAINER_PORT (repeatable; the gateway Service's port and targetPort)."
        ),
    ] = None,
    concurrency: ConcurrencyOpt = 2,
    start_timeout: StartTimeoutOpt = 30.0,
    log_level: LogLevelOpt = "warning",
    health_port: HealthPortOpt = 15021,
) -> None:
    """A gateway in a pod: Gateway resources that select its labels, each server port on
    its container port; health on 15021, metrics on 15020 (Envoy's own on 15090)."""
    from plait.model.proxy import ProxyKind
    from plait.podproxy import PodProxyOptions

    _run(
        PodProxyOptions(
            ProxyKind.GATEWAY, xds_address, ca_address, trust_domain, token_file,
            ca_root_file, run_dir=run_dir, concurrency=concurrency, health_port=health_port,
            start_timeout_s=start_timeout, envoy_log_level=log_level,
            gateway_ports=_ports(port or []),
        )
    )  # fmt: skip
