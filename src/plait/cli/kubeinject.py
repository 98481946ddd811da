"""`plait kube-inject -f FILE`: the webhook's injection, offline (like `istioctl
kube-inject`): every Pod and pod template of a multi-document YAML gets the sidecar, the
capture init container and the token volume; the result goes to stdout (or `-o FILE`).

Exit codes: 0 done; 1 the input is not YAML, or a pod's sidecar annotation is malformed
(the message names file, document and annotation)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from plait.cli import exitcodes
from plait.errors import InjectionError, ManifestError

err = Console(stderr=True, soft_wrap=True)


def kube_inject(
    filename: Annotated[
        str, typer.Option("--filename", "-f", help="The manifest to inject ('-' for stdin).")
    ],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = None,
    image: Annotated[str | None, typer.Option(help="The proxy image (sidecar and init).")] = None,
    xds_address: Annotated[
        str | None, typer.Option(help="The control plane's xDS address.")
    ] = None,
    ca_address: Annotated[str | None, typer.Option(help="The mesh CA's URL.")] = None,
    trust_domain: Annotated[str | None, typer.Option(help="The mesh's trust domain.")] = None,
    hold_application: Annotated[
        bool,
        typer.Option(
            "--hold-application/--no-hold-application",
            help="Start the app only once the proxy is ready (a startup probe).",
        ),
    ] = True,
) -> None:
    """Add plait's sidecar to the Pods and pod templates in FILE (Deployments,
    StatefulSets, DaemonSets, Jobs, CronJobs, ...); other documents pass through."""
    from plait.inject import InjectSettings, inject_manifests

    defaults = InjectSettings()
    settings = InjectSettings(
        proxy_image=image or defaults.proxy_image,
        xds_address=xds_address or defaults.xds_address,
        ca_address=ca_address or defaults.ca_address,
        trust_domain=trust_domain or defaults.trust_domain,
        hold_application_until_proxy_starts=hold_application,
    )
    try:
        text = sys.stdin.read() if filename == "-" else Path(filename).read_text()
    except OSError as exc:
        err.print(f"error: {filename}: {exc.strerror}")
        raise typer.Exit(exitcodes.CONFIG_ERRORS) from None
    try:
        result = inject_manifests(text, settings, "<stdin>" if filename == "-" else filename)
    except (InjectionError, ManifestError) as exc:
        err.print(f"error: {exc}", markup=False)
        raise typer.Exit(exitcodes.CONFIG_ERRORS) from None
    if output is None:
        sys.stdout.write(result)
    else:
        output.write_text(result)
