"""`plait capture apply|remove`: the pod's traffic capture rules, in the current network
namespace. The Kubernetes init container and transparent local mode both run this
command, so there is one implementation (plait.capture).

Exit codes: 0 done; 1 a capture annotation is malformed (the message names it); 2 not
root (or bad options); 7 iptables failed or is missing."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from plait.cli import exitcodes
from plait.errors import CaptureError, CaptureSettingsError

app = typer.Typer(
    help="Traffic capture: the iptables rules that send a pod's TCP through its proxy.",
    no_args_is_help=True,
)
console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def _annotations(items: list[str], files: list[Path]) -> dict[str, str]:
    from plait.capture.settings import parse_downward_annotations

    out: dict[str, str] = {}
    for path in files:
        try:
            out.update(parse_downward_annotations(path.read_text()))
        except OSError as exc:
            raise typer.BadParameter(
                f"{path}: {exc.strerror}", param_hint="--annotations-file"
            ) from None
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"'{item}' is not KEY=VALUE", param_hint="--annotation")
        out[key.strip()] = value
    return out


@app.command()
def apply(
    annotation: Annotated[
        list[str] | None,
        typer.Option(
            "--annotation",
            "-a",
            help="A pod annotation KEY=VALUE, e.g. "
            "traffic.sidecar.istio.io/excludeOutboundPorts=22 (repeatable).",
        ),
    ] = None,
    annotations_file: Annotated[
        list[Path] | None,
        typer.Option(help='A downward-API annotations file (key="value" lines).'),
    ] = None,
    proxy_uid: Annotated[int, typer.Option(help="UID the proxy runs as (exempt).")] = 1337,
    proxy_gid: Annotated[
        int | None, typer.Option(help="GID the proxy runs as (exempt; default: the UID).")
    ] = None,
    outbound_port: Annotated[int, typer.Option(help="Outbound capture port.")] = 15001,
    inbound_port: Annotated[int, typer.Option(help="Inbound capture port.")] = 15006,
    proxy_port: Annotated[
        list[int] | None,
        typer.Option(
            help="A port of the proxy itself, never captured inbound (repeatable; "
            "default 15020, 15021, 15090)."
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the iptables-restore input; change nothing.")
    ] = False,
) -> None:
    """Redirect this network namespace's TCP through the proxy: outbound to
    --outbound-port, inbound to --inbound-port; the proxy's own traffic is exempt.
    Replaces capture rules already present."""
    from plait.capture import iptables
    from plait.capture.command import DEFAULT_PROXY_PORTS
    from plait.capture.rules import capture_rules
    from plait.capture.settings import CaptureSettings, from_annotations

    base = CaptureSettings(
        proxy_uid=proxy_uid,
        proxy_gid=proxy_uid if proxy_gid is None else proxy_gid,
        outbound_capture_port=outbound_port,
        inbound_capture_port=inbound_port,
        proxy_ports=tuple(proxy_port) if proxy_port else DEFAULT_PROXY_PORTS,
    )
    try:
        settings = from_annotations(_annotations(annotation or [], annotations_file or []), base)
    except CaptureSettingsError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(exitcodes.CONFIG_ERRORS) from None
    rules = capture_rules(settings)
    if dry_run:
        print(rules.restore_text(), end="")
        return
    _require_root("plait capture apply")
    try:
        replaced = iptables.apply(rules)
    except CaptureError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(exitcodes.CAPTURE_FAILED) from None
    console.print(
        f"capture: {len(rules.rules)} nat rules {'replaced' if replaced else 'applied'} "
        f"(outbound → {outbound_port}, inbound → {inbound_port}, "
        f"uid {settings.proxy_uid} / gid {settings.proxy_gid} exempt)"
    )


@app.command()
def remove(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the iptables-restore input; change nothing.")
    ] = False,
) -> None:
    """Remove the capture rules from this network namespace (nothing else is touched)."""
    from plait.capture import iptables
    from plait.capture.rules import removal_text

    _require_root("plait capture remove")
    try:
        if dry_run:
            print(removal_text(iptables.saved_nat()), end="")
            return
        removed = iptables.remove()
    except CaptureError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(exitcodes.CAPTURE_FAILED) from None
    console.print("capture: rules removed" if removed else "capture: no capture rules here")


def _require_root(command: str) -> None:
    from plait.capture.iptables import need_root

    reason = need_root(command)
    if reason is not None:
        err.print(f"[red]error:[/] {reason}")
        raise typer.Exit(exitcodes.USAGE)
