"""The `plait` command: up, down, status, logs, analyze (and the control-plane process itself)."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from plait.cli import exitcodes, render
from plait.cli.ca import app as ca_app
from plait.cli.capture import app as capture_app
from plait.cli.kubeinject import kube_inject
from plait.cli.proxy import app as proxy_app
from plait.cli.proxyconfig import app as proxy_config_app
from plait.cli.target import ContextOpt, ControlPlaneNamespaceOpt, KubeconfigOpt, error_line
from plait.errors import ConfigMessage, MeshStateError, Severity
from plait.kube.controlplane import DEFAULT_NAMESPACE

app = typer.Typer(
    help="plait: a service mesh on Envoy that speaks the Istio API.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()
err = Console(stderr=True)
app.add_typer(ca_app, name="ca")
app.add_typer(capture_app, name="capture")
app.add_typer(proxy_config_app, name="proxy-config")
app.add_typer(proxy_app, name="proxy")
app.command("kube-inject")(kube_inject)

MeshDir = Annotated[
    Path,
    typer.Argument(
        help="The mesh directory (Kubernetes + Istio YAML).", exists=True, file_okay=False
    ),
]


class Output(StrEnum):
    table = "table"
    wide = "wide"  # a table with every column, values whole (as `kubectl get -o wide`)
    json = "json"


OutputOpt = Annotated[Output, typer.Option("--output", "-o", help="Output format.")]


MIN_CERT_TTL_S = 10


def _ttl(value: str) -> str:
    from plait.api.duration import parse_nanos

    try:
        seconds = parse_nanos(value) / 1e9
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    if seconds < MIN_CERT_TTL_S:
        raise typer.BadParameter(f"'{value}' is too short: at least {MIN_CERT_TTL_S}s")
    return value


@app.command()
def up(
    directory: MeshDir,
    detach: Annotated[
        bool, typer.Option("--detach", "-d", help="Return once every proxy has ACKed its config.")
    ] = False,
    gateway_port: Annotated[
        int, typer.Option(help="Host port of the ingress gateway (0 = any free port).")
    ] = 8080,
    timeout: Annotated[
        float, typer.Option(help="Seconds to wait for the mesh to get ready.")
    ] = 60.0,
    cert_ttl: Annotated[
        str,
        typer.Option(
            help="Lifetime of workload certificates (e.g. 24h, 20s); agents renew them "
            "at about half of it.",
            callback=_ttl,
        ),
    ] = "24h",
    ca_dir: Annotated[
        Path | None,
        typer.Option(
            help="Your own CA (Istio's plugged-in layout: ca-cert.pem, ca-key.pem, "
            "cert-chain.pem, root-cert.pem); default: a root plait makes in DIRECTORY/.plait/ca.",
            exists=True,
            file_okay=False,
        ),
    ] = None,
    transparent: Annotated[
        bool,
        typer.Option(
            help="Linux, root: every replica in its own network namespace (a pod with its "
            "own IP), its traffic captured by iptables as in Istio; apps get no proxy variables.",
        ),
    ] = False,
) -> None:
    """Start the mesh in DIRECTORY: control plane and CA, ingress gateway, every replica
    with its sidecar; sidecars talk mutual TLS with workload certificates."""
    from plait.cli.up import refuse_transparent, run_detached, run_foreground

    if transparent and refuse_transparent(err):
        raise typer.Exit(exitcodes.USAGE)
    from plait.local.upoptions import UpOptions

    opts = UpOptions(
        root=directory,
        gateway_port=gateway_port,
        ready_timeout_s=timeout,
        cert_ttl=cert_ttl,
        ca_dir=ca_dir.resolve() if ca_dir is not None else None,
        transparent=transparent,
    )
    code = (run_detached if detach else run_foreground)(opts, console, err)
    raise typer.Exit(code)


@app.command()
def down(directory: MeshDir) -> None:
    """Stop the mesh that `plait up DIRECTORY --detach` started."""
    from plait.cli.up import stop_detached

    raise typer.Exit(stop_detached(directory, console, err))


@app.command()
def status(directory: MeshDir, output: OutputOpt = Output.table) -> None:
    """Proxies, their xDS sync state (SYNCED, STALE, NACK with Envoy's error) and config errors."""
    from plait.local.status import collect_status

    try:
        data = collect_status(directory)
    except MeshStateError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(exitcodes.NOT_RUNNING) from None
    if output == Output.json:
        print(json.dumps(data, indent=2))
        return
    console.print(f"phase: {data['phase']}   gateway: {data['gateway'] or '-'}")
    if data["controlPlane"].get("error"):
        err.print(f"[yellow]warning:[/] {data['controlPlane']['error']}")
    for task, problem in sorted(data.get("problems", {}).items()):
        err.print(f"[yellow]warning:[/] {task}: {problem}")
    wide = output == Output.wide
    render.proxies_table(data["proxies"], wide).print(console)
    render.print_nacks(console, data["proxies"])
    msgs = [_message(m) for m in data["errors"] + data["warnings"]]
    render.print_messages(console, msgs, wide)
    for kept in data["keptLastGood"]:
        console.print(f"[yellow]serving last good config for[/] {kept}")
    ca = data.get("ca") or {}
    for warning in ca.get("warnings", []):
        console.print(f"[yellow]warning: CA:[/] {warning}")
    for refused in data.get("refusedProxies", [])[-5:]:
        console.print(
            f"[yellow]refused xDS client[/] {refused['node']} ({refused['identity'] or 'no identity'}): "
            f"{refused['reason']}"
        )


@app.command()
def traces(
    directory: MeshDir,
    trace_id: Annotated[str | None, typer.Argument(help="Show this trace as a waterfall.")] = None,
    limit: Annotated[int, typer.Option(help="How many recent traces to list.", min=1)] = 20,
    output: OutputOpt = Output.table,
) -> None:
    """Recent traces from the mesh's own trace store, or one trace as a waterfall."""
    from plait.cli.traces import run

    raise typer.Exit(run(directory, trace_id, limit, output == Output.json, console, err))


ClusterMeshDir = Annotated[
    Path | None,
    typer.Argument(
        help="The mesh directory (a running `plait up`); leave out, or give --kubeconfig "
        "or --context, for a cluster's control plane.",
        exists=True,
        file_okay=False,
        show_default=False,
    ),
]


@app.command("proxy-status")
def proxy_status(
    directory: ClusterMeshDir = None,
    output: OutputOpt = Output.table,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
    namespace: ControlPlaneNamespaceOpt = DEFAULT_NAMESPACE,
) -> None:
    """Per proxy and xDS type (CDS, LDS, EDS, RDS): SYNCED, NOT SENT, STALE or NACK with
    Envoy's error; the generation ACKed and the Envoy version. Exit 5 unless all in sync.
    With a cluster: the control plane's view through the API server (exit 3: none found,
    8: refused)."""
    from plait.cli.proxystatus import run, run_cluster
    from plait.cli.target import control_plane, is_cluster

    json_output, wide = output == Output.json, output == Output.wide
    if not is_cluster(directory, kubeconfig, context):
        assert directory is not None
        raise typer.Exit(run(directory, json_output, console, err, wide=wide))
    cp = control_plane(err, kubeconfig, context, namespace)
    raise typer.Exit(run_cluster(cp, json_output, console, err, wide=wide))


@app.command()
def top(
    directory: MeshDir,
    interval: Annotated[
        str, typer.Option(help="Time between frames (seconds, or 500ms, 2s, 1m).")
    ] = "2s",
    once: Annotated[
        bool, typer.Option("--once", help="Print one frame after one interval, then exit.")
    ] = False,
    output: OutputOpt = Output.table,
) -> None:
    """Live per-service rps, success rate (non-5xx share), p50 and p99 as the servers'
    sidecars see them, and per edge (source workload -> service); busiest first; Ctrl-C
    ends it. Exit 3: no mesh runs."""
    from plait.cli.top import TopOptions, parse_interval, run

    try:
        seconds = parse_interval(interval)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--interval") from None
    if output == Output.json and not once:
        raise typer.BadParameter("-o json needs --once", param_hint="--output")
    opts = TopOptions(root=directory, interval_s=seconds, once=once, json=output == Output.json)
    raise typer.Exit(run(opts, console, err))


@app.command()
def dashboard(
    directory: MeshDir,
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1 (0 = any free port).")] = 0,
) -> None:
    """Serve a web page: live service graph, golden metrics per service, proxy sync
    status, config errors, recent traces. Prints its URL; Ctrl-C stops. Exit 3: no mesh."""
    import asyncio
    import contextlib

    from plait.dashboard.server import serve
    from plait.local.statefile import read_state

    try:
        read_state(directory)
    except MeshStateError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(exitcodes.NOT_RUNNING) from None
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            serve(directory, port, lambda url: print(f"plait dashboard: {url}", flush=True))
        )


def _message(m: dict[str, object]) -> ConfigMessage:
    return ConfigMessage(
        file=str(m["file"]),
        document=int(str(m["document"])),
        path=str(m["path"]),
        message=str(m["message"]),
        severity=Severity(str(m["severity"])),
        kind=str(m.get("kind") or ""),
        name=str(m.get("name") or ""),
    )


def _since(value: str | None) -> float | None:
    """`--since`: seconds, or a duration such as 30s, 5m, 1h."""
    from plait.api.duration import parse_nanos

    if value is None:
        return None
    try:
        return float(value) if value.replace(".", "", 1).isdigit() else parse_nanos(value) / 1e9
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


@app.command()
def logs(
    target: Annotated[
        str, typer.Argument(help="A Service (NAME or NAME.NAMESPACE), a workload or a replica.")
    ],
    directory: MeshDir,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines until Ctrl-C.")
    ] = False,
    since: Annotated[
        str | None,
        typer.Option(help="Only requests that started this long ago or later (30s, 5m, 1h)."),
    ] = None,
    app_logs: Annotated[
        bool, typer.Option("--app", help="The apps' own stdout and stderr instead.")
    ] = False,
    output: OutputOpt = Output.table,
) -> None:
    """Access logs of every replica of TARGET, merged by time: one line per request seen
    by its sidecars (inbound and outbound), or one JSON object per line with -o json."""
    from plait.cli.logs import LogsOptions, show_logs, stdout_line

    since_s = _since(since)
    if app_logs and since_s is not None:
        raise typer.BadParameter("app logs carry no timestamps", param_hint="--since")
    opts = LogsOptions(
        target=target,
        root=directory,
        follow=follow,
        since_s=since_s,
        json=output == Output.json,
        app=app_logs,
    )
    raise typer.Exit(show_logs(opts, stdout_line, lambda m: err.print(f"[red]error:[/] {m}")))


@app.command()
def analyze(
    directory: Annotated[
        Path | None,
        typer.Argument(
            help="The mesh directory (Kubernetes + Istio YAML); with --kubeconfig, optional.",
            exists=True,
            file_okay=False,
        ),
    ] = None,
    output: OutputOpt = Output.table,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
    files: Annotated[
        list[Path] | None,
        typer.Option(
            "--file",
            "-f",
            exists=True,
            help="With --kubeconfig: a YAML file (or directory) analyzed in place of the "
            "cluster's resources of the same kind, namespace and name.",
        ),
    ] = None,
) -> None:
    """Validate the configuration in DIRECTORY (or a cluster's, with --kubeconfig or
    --context): schema, then semantics (unknown hosts and subsets, unreachable rules,
    conflicting VirtualServices, regexes Envoy would reject...). Exit 1 if there are errors
    (what a running mesh would refuse to push), 0 otherwise."""
    from plait.cli.analyze import analyze_cluster, analyze_directory, report_grid
    from plait.errors import KubeError
    from plait.kube import config as kube_config

    if kubeconfig is not None or context is not None or files:
        try:
            cluster = kube_config.load(kubeconfig, context)
            report = analyze_cluster(cluster, [*(files or []), *([directory] if directory else [])])
        except KubeError as exc:
            err.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(exitcodes.USAGE) from None
        where = Path.cwd()
    elif directory is None:
        err.print(
            "[red]error:[/red] give a mesh DIRECTORY, or --kubeconfig/--context for a cluster"
        )
        raise typer.Exit(exitcodes.USAGE)
    else:
        report = analyze_directory(directory)
        where = directory
    if output == Output.json:
        print(json.dumps({"messages": [m.to_json() for m in report.messages]}, indent=2))
    else:
        if report.messages:
            report_grid(where, report.messages, output == Output.wide).print(console)
        console.print(
            f"{report.resources} resources, [red]{report.errors} errors[/], "
            f"[yellow]{report.warnings} warnings[/]"
        )
    raise typer.Exit(exitcodes.CONFIG_ERRORS if report.errors else exitcodes.OK)


@app.command()
def describe(
    service: Annotated[
        str, typer.Argument(help="NAME, NAME.NAMESPACE or a FQDN / ServiceEntry host.")
    ],
    directory: Annotated[
        Path | None,
        typer.Argument(
            help="The mesh directory (Kubernetes + Istio YAML); leave out, or give "
            "--kubeconfig or --context, for a cluster's resources.",
            exists=True,
            file_okay=False,
            show_default=False,
        ),
    ] = None,
    path: Annotated[str, typer.Option(help="Route this request path (with query).")] = "/",
    method: Annotated[str, typer.Option(help="Route a request with this method.")] = "GET",
    header: Annotated[
        list[str] | None, typer.Option("--header", "-H", help="Request header k=v (repeatable).")
    ] = None,
    source: Annotated[
        str | None, typer.Option("--from", help="Calling workload (NAME or NAMESPACE/NAME).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Service port (default: first HTTP).")] = None,
    output: OutputOpt = Output.table,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
    namespace: ControlPlaneNamespaceOpt = DEFAULT_NAMESPACE,
) -> None:
    """Which Service ports and workloads, VirtualServices, DestinationRules and security
    policies apply to SERVICE, and where a request (--path/--header/--method/--from) goes.
    Adds the live replicas and their sync state when a mesh runs. Exit 2: unknown service.
    With a cluster: its resources, and live replicas from its control plane."""
    from plait.cli.describe import render, run, run_cluster
    from plait.cli.target import control_plane, is_cluster
    from plait.describe import RouteQuery

    headers: dict[str, str] = {}
    for item in header or []:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise typer.BadParameter(f"'{item}' is not k=v", param_hint="--header")
        headers[name.strip().lower()] = value
    query = RouteQuery(path=path, method=method, headers=headers, caller=source, port=port)
    if not is_cluster(directory, kubeconfig, context):
        assert directory is not None
        code, data = run(directory, service, query, live=True)
    else:
        cp = control_plane(err, kubeconfig, context, namespace)

        def warn(message: str) -> None:
            err.print(f"[yellow]warning:[/] {message}", highlight=False)

        code, data = run_cluster(cp, service, query, warn)
    if code != exitcodes.OK:
        error_line(err, str(data))
        raise typer.Exit(code)
    if output == Output.json:
        print(json.dumps(data, indent=2, default=str))
    else:
        render(console, data, wide=output == Output.wide)


@app.command()
def discovery(
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "0.0.0.0",  # noqa: S104
    xds_port: Annotated[int, typer.Option(help="xDS (ADS gRPC) port.")] = 15010,
    status_port: Annotated[int, typer.Option(help="Status and metrics HTTP port.")] = 15014,
    namespace: Annotated[
        str,
        typer.Option(
            envvar="POD_NAMESPACE",
            help="The control plane's namespace: its CA Secret, injector ConfigMap, Lease.",
        ),
    ] = "istio-system",
    lease: Annotated[
        str | None,
        typer.Option(help="Elect a leader on this Lease; only the leader writes status."),
    ] = None,
    lease_namespace: Annotated[
        str | None, typer.Option(help="The Lease's namespace (default: --namespace).")
    ] = None,
    identity: Annotated[
        str, typer.Option(envvar="POD_NAME", help="This replica's name in the Lease.")
    ] = "",
    ca_dir: Annotated[
        Path | None,
        typer.Option(
            help="The mesh CA's directory (created if empty): serves the CA (TokenReview of "
            "projected service-account tokens) and mTLS xDS admitting proxies as their pods; "
            "without it xDS is plaintext."
        ),
    ] = None,
    ca_secret: Annotated[
        str | None,
        typer.Option(
            help="Keep the CA in this Secret of --namespace: restored into --ca-dir at start "
            "(a plugged-in `cacerts` Secret first), created from a new root if missing."
        ),
    ] = None,
    ca_port: Annotated[int, typer.Option(help="The CA's HTTPS port.")] = 15012,
    cert_ttl: Annotated[
        str, typer.Option(help="Workload certificate lifetime.", callback=_ttl)
    ] = "24h",
    webhook_port: Annotated[
        int | None,
        typer.Option(
            help="Serve the sidecar injection webhook here (HTTPS, the CA's serving "
            "certificate), with settings from the ConfigMap plait-sidecar-injector; keep its "
            "configuration's caBundle and publish istio-ca-root-cert to every namespace."
        ),
    ] = None,
    owner: Annotated[
        str | None,
        typer.Option(
            help="The ClusterRole that owns what this process creates (CA Secret, Lease, "
            "root-cert ConfigMaps): garbage collected with it."
        ),
    ] = None,
) -> None:
    """Run the control plane of a Kubernetes cluster (as the plait chart's pods do)."""
    import datetime as dt

    from plait.controlplane import grpctune

    grpctune.tune()  # before anything loads gRPC
    from plait.api.duration import parse_nanos
    from plait.controlplane.discovery import DiscoveryOptions, main
    from plait.errors import CaError, InjectionError, KubeConfigError, KubeError

    if (ca_secret is not None or webhook_port is not None) and ca_dir is None:
        raise typer.BadParameter("needs --ca-dir", param_hint="--ca-secret/--webhook-port")
    try:
        main(
            DiscoveryOptions(
                kubeconfig,
                context,
                host,
                xds_port,
                status_port,
                lease,
                lease_namespace,
                identity,
                ca_dir,
                ca_port,
                dt.timedelta(seconds=parse_nanos(cert_ttl) / 1e9),
                namespace=namespace,
                ca_secret=ca_secret,
                webhook_port=webhook_port,
                owner=owner,
            )
        )
    except (KubeError, InjectionError, CaError) as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(
            exitcodes.USAGE if isinstance(exc, KubeConfigError) else exitcodes.STARTUP_FAILED
        ) from None


@app.command(hidden=True)
def controlplane(
    directory: MeshDir,
    xds_port: Annotated[int, typer.Option(help="xDS (ADS gRPC) port.")] = 15010,
    xds_host: Annotated[str, typer.Option(help="Address xDS listens on.")] = "127.0.0.1",
    status_port: Annotated[int, typer.Option(help="Status HTTP port.")] = 15014,
    ca_port: Annotated[int, typer.Option(help="The CA's HTTPS port (0 = any free port).")] = 0,
    ca_dir: Annotated[
        Path | None, typer.Option(help="CA directory (default DIRECTORY/.plait/ca).")
    ] = None,
    token_key: Annotated[
        Path | None,
        typer.Option(
            help="PEM public key that signs workload tokens; without it: no CA and plaintext xDS."
        ),
    ] = None,
    cert_ttl: Annotated[
        str, typer.Option(help="Workload certificate lifetime.", callback=_ttl)
    ] = "24h",
) -> None:
    """Run the control plane alone (plait up starts it for you)."""
    import datetime as dt

    from plait.controlplane import grpctune

    grpctune.tune()  # before anything loads gRPC
    from plait.api.duration import parse_nanos
    from plait.controlplane.main import ControlPlaneOptions, main
    from plait.controlplane.security import SecurityOptions

    root = directory.resolve()
    security = None
    if token_key is not None:
        security = SecurityOptions(
            ca_dir=ca_dir or root / ".plait" / "ca",
            token_public_key=token_key,
            ca_port=ca_port,
            workload_ttl=dt.timedelta(seconds=parse_nanos(cert_ttl) / 1e9),
        )
    main(
        ControlPlaneOptions(
            root=root,
            xds_host=xds_host,
            xds_port=xds_port,
            debug_port=status_port,
            security=security,
        )
    )
