"""`plait proxy-status`: per proxy and xDS type, does Envoy run what the control plane sent?

The control plane's view (its `/status`, joined with state.json by `collect_status`) gives
each type's state — SYNCED, NOT SENT (nothing of the type sent yet), STALE (sent, not yet
ACKed), NACK (rejected; Envoy's error is kept) — and the newest config generation the
proxy fully ACKed. Each proxy's admin `/server_info` adds the Envoy version.

The exit code lets scripts gate on it (like `istioctl proxy-status`): OK when every proxy
is connected and every type SYNCED or NOT SENT, NOT_SYNCED otherwise (a NACK, a STALE
type, a disconnected proxy, or an unreachable control plane: state UNKNOWN).

With a cluster (`run_cluster`) the same view comes from the control plane's `/status`
through the API server (`plait.kube.controlplane`); see `target.py` for the modes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console, Group
from rich.markup import escape
from rich.text import Text

from plait.cli import exitcodes
from plait.cli.render import Column, Grid
from plait.cli.target import cluster_exit_code, error_line
from plait.errors import KubeError

if TYPE_CHECKING:
    from plait.kube.controlplane import ControlPlane

TYPES = ("cds", "lds", "eds", "rds")
GOOD_STATES = frozenset({"SYNCED", "NOT SENT"})
_STYLE = {"SYNCED": "green", "NOT SENT": "dim", "STALE": "yellow", "NACK": "bold red"}


def status_rows(
    data: Mapping[str, Any], versions: Mapping[str, str | None]
) -> list[dict[str, Any]]:
    """One JSON row per proxy of `collect_status` output, with its Envoy version."""
    rows = []
    for p in data["proxies"]:
        sync = p.get("sync") or {}
        row = {
            "name": p["name"],
            "kind": p.get("kind"),
            "workload": p.get("workload"),
            "connected": bool(p.get("connected")),
            "sync": {t: str(sync.get(t, "UNKNOWN")) for t in TYPES},
            "generation": p.get("generation"),
            "envoy": versions.get(p["name"]),
            "nack": p.get("nack"),
        }
        row["inSync"] = in_sync(row)
        rows.append(row)
    return rows


def in_sync(row: Mapping[str, Any]) -> bool:
    return bool(row["connected"]) and all(s in GOOD_STATES for s in row["sync"].values())


def status_grid(rows: Sequence[Mapping[str, Any]], wide: bool = False) -> Grid:
    grid = Grid(
        "proxy sync status (control plane's view)",
        [
            Column("name", flex=True),
            *(Column(t) for t in TYPES),
            Column("gen", right=True),
            Column("envoy"),
        ],
        wide,
    )
    for row in rows:
        name = escape(str(row["name"]))
        name = name if row["connected"] else f"{name} [red](disconnected)[/]"
        states = [f"[{_STYLE.get(s, 'white')}]{s}[/]" for s in (row["sync"][t] for t in TYPES)]
        generation = "-" if row["generation"] is None else str(row["generation"])
        grid.add_row(name, *states, generation, escape(row["envoy"] or "-"))
    return grid


def nack_table(rows: Sequence[Mapping[str, Any]]) -> Group | None:
    """Envoy's error for each rejected config, proxies with the same error grouped; the
    error is shown whole and wraps (it is what the reader needs)."""
    groups: dict[tuple[str, tuple[str, ...]], list[str]] = {}
    for row in rows:
        types = tuple(t.upper() for t in TYPES if row["sync"][t] == "NACK")
        if types:
            key = (str(row["nack"] or "(Envoy gave no message)"), types)
            groups.setdefault(key, []).append(str(row["name"]))
    if not groups:
        return None
    parts: list[Text] = [
        Text.from_markup(
            "[bold red]rejected by Envoy (NACK): proxies keep their last good config[/]"
        )
    ]
    for (message, types), names in groups.items():
        parts.append(Text(f"{', '.join(types)}  {', '.join(names)}", style="bold"))
        parts.append(Text("  " + message))
    return Group(*parts)


def envoy_versions(proxies: Sequence[Mapping[str, Any]]) -> dict[str, str | None]:
    """Each proxy's Envoy version from its admin `/server_info`; None when unreachable."""
    from plait.errors import EnvoyAdminError
    from plait.local.configdump import envoy_version, fetch_server_info

    versions: dict[str, str | None] = {}
    for p in proxies:
        try:
            versions[p["name"]] = (
                envoy_version(fetch_server_info(p["admin"])) if p.get("admin") else None
            )
        except EnvoyAdminError:
            versions[p["name"]] = None
    return versions


def run(
    directory: Path, json_output: bool, console: Console, err: Console, wide: bool = False
) -> int:
    """Print the sync status of every proxy of the mesh in `directory`; the exit code."""
    from plait.errors import MeshStateError
    from plait.local.status import collect_status

    try:
        data = collect_status(directory)
    except MeshStateError as exc:
        err.print(f"[red]error:[/] {exc}", highlight=False)
        return exitcodes.NOT_RUNNING
    rows = status_rows(data, envoy_versions(data["proxies"]))
    return show(data["controlPlane"], rows, json_output, console, err, wide)


def run_cluster(
    control_plane: ControlPlane,
    json_output: bool,
    console: Console,
    err: Console,
    wide: bool = False,
) -> int:
    """The same, from the control plane's `/status` in a cluster (through the API server);
    the Envoy version is not known there (no admin port is reachable)."""
    try:
        data = control_plane.get_json("/status")
    except KubeError as exc:
        error_line(err, str(exc))
        return cluster_exit_code(exc)
    rows = status_rows(data, {})
    return show(data.get("controlPlane", {}), rows, json_output, console, err, wide)


def show(
    control_plane: Mapping[str, Any],
    rows: Sequence[Mapping[str, Any]],
    json_output: bool,
    console: Console,
    err: Console,
    wide: bool,
) -> int:
    """Print `rows` as JSON or tables; the exit code."""
    synced = all(r["inSync"] for r in rows)
    if json_output:
        out = {
            "controlPlane": {
                "generation": control_plane.get("generation"),
                "error": control_plane.get("error"),
            },
            "proxies": rows,
            "inSync": synced,
        }
        print(json.dumps(out, indent=2))
    else:
        if control_plane.get("error"):
            err.print(f"[yellow]warning:[/] {control_plane['error']}", highlight=False)
        console.print(f"control plane generation: {control_plane.get('generation', '-')}")
        status_grid(rows, wide).print(console)
        nacks = nack_table(rows)
        if nacks is not None:
            console.print(nacks)
        unsynced = sum(not r["inSync"] for r in rows)
        if unsynced:
            console.print(f"[yellow]{unsynced} of {len(rows)} proxies not in sync[/]")
    return exitcodes.OK if synced else exitcodes.NOT_SYNCED
