"""`plait ca ...`: inspect the mesh CA and rotate its root, on the files of the CA
directory (DIR/.plait/ca unless --ca-dir). A running control plane picks changes up.

The CA modules are imported inside the commands, so that `plait` starts fast."""

from __future__ import annotations

import datetime as dt
import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from plait.cli import exitcodes
from plait.errors import CaError

app = typer.Typer(
    help="The mesh certificate authority: status and root rotation.", no_args_is_help=True
)
console = Console()
err = Console(stderr=True)

MeshDir = Annotated[
    Path,
    typer.Argument(help="The mesh directory; its CA lives in DIR/.plait/ca.", file_okay=False),
]
CaDirOpt = Annotated[
    Path | None, typer.Option("--ca-dir", help="The CA directory, if not DIR/.plait/ca.")
]


class Output(StrEnum):
    table = "table"
    json = "json"


class Step(StrEnum):
    add = "add"
    switch = "switch"
    finish = "finish"


def ca_dir_of(directory: Path, ca_dir: Path | None) -> Path:
    return ca_dir if ca_dir is not None else directory / ".plait" / "ca"


def _fail(exc: CaError) -> typer.Exit:
    err.print(f"[red]error:[/] {exc}", highlight=False)
    return typer.Exit(exitcodes.CONFIG_ERRORS)


@app.command()
def status(
    directory: MeshDir,
    ca_dir: CaDirOpt = None,
    output: Annotated[Output, typer.Option("--output", "-o", help="Output format.")] = Output.table,
) -> None:
    """Roots and intermediates, their expiry, which one signs, and warnings."""
    from plait.ca import CertificateAuthority, rotation
    from plait.model.meshsettings import DEFAULT_TRUST_DOMAIN

    try:
        ca = CertificateAuthority.load(ca_dir_of(directory, ca_dir), DEFAULT_TRUST_DOMAIN)
    except CaError as exc:
        raise _fail(exc) from None
    desc = ca.describe()
    data = desc.to_json() | {"rotation": rotation.phase(ca.ca_dir).value}
    if output == Output.json:
        print(json.dumps(data, indent=2))
        return
    console.print(
        f"CA {desc.ca_dir} ({desc.layout}), rotation: {data['rotation']}", highlight=False
    )
    table = Table("role", "file", "subject", "not after", "days left", "signs")
    for c in desc.certs:
        table.add_row(
            c.role,
            Path(c.file).name,
            c.subject,
            f"{c.not_after:%Y-%m-%d}",
            str(c.days_left),
            "yes" if c.signs else "",
        )
    console.print(table)
    for warning in desc.warnings:
        console.print(f"[yellow]warning:[/] {warning}", highlight=False)


@app.command("rotate-root")
def rotate_root(
    directory: MeshDir,
    step: Annotated[Step, typer.Option("--step", help="add, then switch, then finish.")],
    ca_dir: CaDirOpt = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="finish: drop the old root before a workload TTL has passed."),
    ] = False,
) -> None:
    """Rotate a plait-made root without downtime: add a next root (trusted, not signing),
    switch to it (the old root stays trusted), finish (the old root is dropped)."""
    from plait.ca import rotation

    where = ca_dir_of(directory, ca_dir)
    now = dt.datetime.now(dt.UTC)
    try:
        if step is Step.add:
            result = rotation.add_next_root(where, now)
        elif step is Step.switch:
            result = rotation.switch_root(where, now)
        else:
            result = rotation.finish_rotation(where, now, force=force)
    except CaError as exc:
        raise _fail(exc) from None
    console.print(f"[green]{step.value}:[/] {result.done}", highlight=False)
    console.print(f"[bold]next:[/] {result.next}", highlight=False)
