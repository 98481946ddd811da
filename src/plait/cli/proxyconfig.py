"""`plait proxy-config cluster|listener|route|endpoint|secret|bootstrap PROXY DIR`.

Reads one proxy's Envoy admin interface (its address is in DIR/.plait/state.json) and
shows readable tables, like `istioctl proxy-config`; `-o json|yaml` prints the raw config
dump section instead (secrets without private keys). With a cluster (`--kubeconfig`,
`--context`, or no DIR: see `target.py`) the config is what the control plane sends the
proxy, from its `/debug/config_dump` through the API server, as istioctl asks istiod. Tables are built from the pure rows
of `plait.local.configrows` / `listenerrows`; modules are imported inside the commands
so that `plait` starts fast.
"""

from __future__ import annotations

import datetime as dt
import json
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from plait.cli import exitcodes
from plait.cli.render import Column, Grid
from plait.cli.target import ContextOpt, ControlPlaneNamespaceOpt, KubeconfigOpt, error_line
from plait.kube.controlplane import DEFAULT_NAMESPACE

if TYPE_CHECKING:
    from plait.kube.controlplane import ControlPlane
    from plait.local.statefile import ProxyEntry

app = typer.Typer(
    help="A proxy's Envoy configuration (from its admin /config_dump) as tables, JSON or YAML.",
    no_args_is_help=True,
)
console = Console()
err = Console(stderr=True)


class Format(StrEnum):
    table = "table"
    wide = "wide"  # the table with every value whole
    json = "json"
    yaml = "yaml"


ProxyArg = Annotated[
    str,
    typer.Argument(
        help="The proxy: its name (sidecar~client-0.default), its instance (client-0), "
        "or a workload with one replica (client).",
        show_default=False,
    ),
]
MeshDir = Annotated[
    Path | None,
    typer.Argument(
        help="The mesh directory (a running `plait up`); leave out, or give --kubeconfig or "
        "--context, for a proxy of a cluster (cluster, listener, route, endpoint).",
        exists=True,
        file_okay=False,
        show_default=False,
    ),
]
FormatOpt = Annotated[Format, typer.Option("--output", "-o", help="Output format.")]


# --- tables --------------------------------------------------------------------------
def _table(
    entry: ProxyEntry, what: str, *columns: str, fixed: tuple[str, ...] = (), wide: bool = False
) -> Grid:
    """A table titled with the proxy; `fixed` columns (short values) are never shortened,
    the others are in a narrow terminal (whole with `-o wide`)."""
    title = f"{what} of {entry.name} (admin {entry.admin})"
    return Grid(title, [Column(c, flex=c not in fixed) for c in columns], wide)


def cluster_table(entry: ProxyEntry, dump: dict[str, Any], wide: bool = False) -> Grid:
    from plait.local.configrows import cluster_rows

    table = _table(
        entry,
        "clusters",
        "cluster",
        "type",
        "endpoints",
        "TLS",
        "circuit breakers",
        fixed=("endpoints", "TLS"),
        wide=wide,
    )
    for r in cluster_rows(dump):
        count = "-" if r.endpoints is None else str(r.endpoints)
        endpoints = f"EDS ({count})" if r.eds else count
        name = r.name if r.state in ("active", "static") else f"{r.name} [yellow]({r.state})[/]"
        kind = r.type.removeprefix("envoy.clusters.")
        table.add_row(name, kind, endpoints, r.tls.value, r.circuit_breakers)
    return table


_FILTER_NAMES = {"http_connection_manager": "HCM"}


def listener_table(entry: ProxyEntry, dump: dict[str, Any], wide: bool = False) -> Grid:
    from plait.local.listenerrows import listener_rows

    table = _table(
        entry,
        "listeners",
        "listener",
        "address",
        "chain",
        "match",
        "filters",
        "HTTP filters",
        wide=wide,
    )  # every cell can be long: all fold
    for r in listener_rows(dump):
        name = r.listener if r.state in ("active", "static") else f"{r.listener} ({r.state})"
        names = [_FILTER_NAMES.get(f, f) for f in r.filters]
        filters = ", ".join(names) + (f" → route {r.route}" if r.route else "")
        table.add_row(name, r.address, r.chain, r.match, filters, ", ".join(r.http_filters))
    return table


def _domains(domains: tuple[str, ...]) -> str:
    """The shortest domain and how many more: `echo:8080 (+3)`."""
    if not domains:
        return "-"
    shortest = min(domains, key=len)
    return f"{shortest} (+{len(domains) - 1})" if len(domains) > 1 else shortest


def route_table(entry: ProxyEntry, dump: dict[str, Any], wide: bool = False) -> Grid:
    from plait.local.listenerrows import route_rows

    table = _table(
        entry, "routes", "route config", "virtual host", "domains", "match", "to", wide=wide
    )
    for r in route_rows(dump):
        table.add_row(r.route_config, r.virtual_host, _domains(r.domains), r.match, r.action)
    return table


def endpoint_table(
    entry: ProxyEntry, dump: dict[str, Any], clusters: dict[str, Any], wide: bool = False
) -> Grid:
    from plait.local.configrows import endpoint_rows

    table = _table(
        entry,
        "endpoints",
        "endpoint",
        "health",
        "weight",
        "tlsMode",
        "cluster",
        fixed=("weight", "tlsMode"),
        wide=wide,
    )
    for r in endpoint_rows(clusters, dump):
        style = "green" if r.health == "HEALTHY" else "red"
        table.add_row(
            r.address, f"[{style}]{r.health}[/]", str(r.weight), r.tls_mode or "-", r.cluster
        )
    return table


def _when(value: dt.datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value is not None else "-"


def secret_table(
    entry: ProxyEntry,
    dump: dict[str, Any],
    certs: dict[str, Any],
    now: dt.datetime,
    wide: bool = False,
) -> Grid:
    """istioctl's secret columns; `status` says `unused` when no TLS context of Envoy
    holds the certificate (`/certs` does not list it)."""
    from plait.local.configrows import secret_rows

    table = _table(
        entry,
        "secrets",
        "name",
        "type",
        "status",
        "valid",
        "SAN",
        "serial",
        "not after (UTC)",
        fixed=("status", "valid", "not after (UTC)"),
        wide=wide,
    )
    for r in secret_rows(dump, certs):
        valid = "[green]yes[/]" if r.valid_at(now) else "[red]no[/]"
        status = r.status if r.in_use else f"{r.status}, unused"
        table.add_row(
            escape(r.name),
            escape(r.kind),
            escape(status),
            valid,
            escape(", ".join(r.sans) or "-"),
            escape(r.serial),
            _when(r.not_after),
        )
    return table


def bootstrap_table(entry: ProxyEntry, dump: dict[str, Any], wide: bool = False) -> Grid:
    from plait.local.configrows import bootstrap_info

    info = bootstrap_info(dump)
    table = _table(entry, "bootstrap", "field", "value", wide=wide)
    table.add_row("node id", info.node_id)
    table.add_row("node cluster", info.node_cluster)
    table.add_row("Envoy", info.envoy_version)
    table.add_row("xDS (ADS)", info.xds)
    table.add_row("admin", f"{entry.admin} (bootstrap: {info.admin})")
    for key, value in sorted(info.metadata.items()):
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        table.add_row(f"metadata {key}", text)
    return table


# --- the commands --------------------------------------------------------------------
def _raw(section: dict[str, Any], output: Format) -> str:
    if output == Format.json:
        return json.dumps(section, indent=2)
    import yaml

    return yaml.safe_dump(section, sort_keys=False, allow_unicode=True).rstrip("\n")


_DUMP_TABLES = {
    "cluster": cluster_table,
    "listener": listener_table,
    "route": route_table,
    "bootstrap": bootstrap_table,
}
# what the control plane's /debug/config_dump holds: all that a cluster can show
CLUSTER_KINDS = ("cluster", "listener", "route", "endpoint")


def _render(kind: str, entry: ProxyEntry, output: Format) -> str | Grid:
    from plait.local import configdump

    wide = output == Format.wide
    dump = configdump.fetch_config_dump(entry.admin, include_eds=kind in ("cluster", "endpoint"))
    if output not in (Format.table, Format.wide):
        return _raw(configdump.section(dump, kind), output)
    if kind == "endpoint":
        return endpoint_table(entry, dump, configdump.fetch_clusters(entry.admin), wide)
    if kind == "secret":
        now = dt.datetime.now(dt.UTC)
        return secret_table(entry, dump, configdump.fetch_certs(entry.admin), now, wide)
    return _DUMP_TABLES[kind](entry, dump, wide)


def show(kind: str, proxy: str, directory: Path, output: Format) -> int:
    """Print one section of a proxy's config; the exit code."""
    from plait.errors import EnvoyAdminError, MeshStateError, ProxyLookupError
    from plait.local.configdump import find_proxy
    from plait.local.statefile import read_state

    try:
        entry = find_proxy(read_state(directory).proxies, proxy)
        shown = _render(kind, entry, output)
    except MeshStateError as exc:
        err.print(f"[red]error:[/] {exc}", highlight=False)
        return exitcodes.NOT_RUNNING
    except ProxyLookupError as exc:
        err.print(f"[red]error:[/] {exc}", highlight=False)
        return exitcodes.USAGE
    except EnvoyAdminError as exc:
        err.print(f"[red]error:[/] {exc}", highlight=False)
        return exitcodes.PROXY_UNREACHABLE
    if isinstance(shown, str):
        print(shown)
    else:
        shown.print(console)
    return exitcodes.OK


def cluster_unsupported(kind: str, output: Format) -> str | None:
    """Why `kind` in `output` cannot be shown from a cluster's control plane, or None: it
    knows what it sends, not Envoy's live health, certificates or bootstrap."""
    if kind not in CLUSTER_KINDS:
        return f"{kind}: only a local mesh's proxies can show it (Envoy's admin interface)"
    if kind == "endpoint" and output in (Format.table, Format.wide):
        return "endpoint: the table shows Envoy's live health; with a cluster use -o json|yaml"
    return None


def show_cluster(kind: str, proxy: str, control_plane: ControlPlane, output: Format) -> int:
    """`show` against a cluster: the proxy's config as its control plane sends it (its
    `/debug/config_dump`, through the API server)."""
    from plait.cli.target import cluster_exit_code
    from plait.errors import KubeError, ProxyLookupError
    from plait.local import configdump
    from plait.local.statefile import ProxyEntry

    if (refused := cluster_unsupported(kind, output)) is not None:
        error_line(err, refused)
        return exitcodes.USAGE
    try:
        proxies = control_plane.get_json("/status").get("proxies", [])
        entries = [
            ProxyEntry(
                name=p["name"],
                kind=p.get("kind") or "",
                workload=p.get("workload") or "",
                namespace=p.get("namespace") or "",
                serviceAccount=p.get("serviceAccount") or "",
                labels=p.get("labels") or {},
                admin=f"control plane {control_plane.where()}",
            )
            for p in proxies
        ]
        entry = configdump.find_proxy(entries, proxy)
        dump = control_plane.get_json("/debug/config_dump", {"proxyID": entry.name})
    except ProxyLookupError as exc:
        error_line(err, str(exc))
        return exitcodes.USAGE
    except KubeError as exc:
        error_line(err, str(exc))
        return cluster_exit_code(exc)
    if output in (Format.table, Format.wide):
        _DUMP_TABLES[kind](entry, dump, output == Format.wide).print(console)
    else:
        print(_raw(configdump.section(dump, kind), output))
    return exitcodes.OK


def _command(kind: str, summary: str, *, plural: bool = True) -> None:
    def command(
        proxy: ProxyArg,
        directory: MeshDir = None,
        output: FormatOpt = Format.table,
        kubeconfig: KubeconfigOpt = None,
        context: ContextOpt = None,
        namespace: ControlPlaneNamespaceOpt = DEFAULT_NAMESPACE,
    ) -> None:
        from plait.cli.target import control_plane, is_cluster

        if not is_cluster(directory, kubeconfig, context):
            assert directory is not None
            raise typer.Exit(show(kind, proxy, directory, output))
        raise typer.Exit(
            show_cluster(kind, proxy, control_plane(err, kubeconfig, context, namespace), output)
        )

    command.__doc__ = summary
    app.command(kind)(command)
    if plural:  # istioctl accepts `clusters` too
        app.command(f"{kind}s", hidden=True)(command)


_command("cluster", "Clusters: type, endpoints (count, or EDS), TLS mode, circuit breakers.")
_command("listener", "Listeners: address, each filter chain's match, filters and HTTP filters.")
_command("route", "Routes: route config, virtual host, domains, match, destination cluster(s).")
_command("endpoint", "Endpoints: address, live health, weight, tlsMode, cluster.")
_command("secret", "Secrets: certificates' SAN, serial, validity (never a private key).")
_command("bootstrap", "Bootstrap: node id and metadata, xDS server, admin address.", plural=False)
