"""`plait describe SERVICE DIR`: load DIR as `plait analyze` does, describe one service
(`plait.describe`), add the live replicas and their sync state when a mesh runs, print.
With a cluster (see `target.py`): the cluster's resources, the live replicas from its
control plane."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape

from plait.analysis import vet
from plait.cli import exitcodes
from plait.cli.render import Column, Grid
from plait.describe import RouteQuery, UnknownCaller, describe, find_service, service_names
from plait.errors import MeshStateError
from plait.model.snapshot import build_snapshot
from plait.sources.directory import DirectorySource

if TYPE_CHECKING:
    from plait.kube.controlplane import ControlPlane
    from plait.sources.directory import ConfigView


def live_replicas(directory: Path, workloads: set[str]) -> list[dict[str, Any]] | None:
    """The running sidecars of `workloads` (`namespace/name`) from `plait status`; None
    when no mesh runs for the directory."""
    from plait.local.status import collect_status

    try:
        data = collect_status(directory)
    except MeshStateError:
        return None
    return _live(data["proxies"], workloads)


def _live(proxies: list[dict[str, Any]], workloads: set[str]) -> list[dict[str, Any]]:
    return [
        {k: p.get(k) for k in _LIVE_KEYS}
        for p in proxies
        if f"{p.get('namespace')}/{p.get('workload')}" in workloads
    ]


_LIVE_KEYS = ("name", "workload", "namespace", "inbound", "sync", "nack")


def run(directory: Path, name: str, query: RouteQuery | None, live: bool) -> tuple[int, Any]:
    """(exit code, the description or an error text)."""
    view = DirectorySource(directory, check=vet).load()
    code, data = _describe(view, str(directory), name, query)
    if code == exitcodes.OK and live:
        data["live"] = live_replicas(directory, _workloads(data))
    return code, data


def run_cluster(
    control_plane: ControlPlane, name: str, query: RouteQuery | None, warn: Callable[[str], None]
) -> tuple[int, Any]:
    """`run` against a cluster: its resources as `plait discovery` lists them, the live
    replicas from its control plane's `/status` (a warning, not an error, when that
    cannot be reached: the description stands without it)."""
    from plait.cli.analyze import cluster_view
    from plait.cli.target import cluster_exit_code
    from plait.errors import ControlPlaneNotFoundError, KubeError, KubeForbiddenError

    try:
        view = cluster_view(control_plane.config)
    except KubeError as exc:
        return cluster_exit_code(exc), str(exc)
    code, data = _describe(view, "the cluster", name, query)
    if code != exitcodes.OK:
        return code, data
    try:
        proxies = control_plane.get_json("/status").get("proxies", [])
    except (ControlPlaneNotFoundError, KubeForbiddenError) as exc:
        warn(f"no live replicas: {exc}")
        return code, data
    except KubeError as exc:
        return cluster_exit_code(exc), str(exc)
    data["live"] = _selected(proxies, data["service"])
    return code, data


def _selected(proxies: list[dict[str, Any]], service: dict[str, Any]) -> list[dict[str, Any]]:
    """In a cluster the Service's pods are those its selector picks (plait reads Pods, not
    Deployments): the proxies of its namespace whose labels it matches."""
    selector = service["selector"]
    chosen = [
        p
        for p in proxies
        if selector
        and p.get("namespace") == service["namespace"]
        and selector.items() <= (p.get("labels") or {}).items()
    ]
    return [{k: p.get(k) for k in _LIVE_KEYS} for p in chosen]


def _describe(view: ConfigView, where: str, name: str, query: RouteQuery | None) -> tuple[int, Any]:
    snapshot = build_snapshot(view.resources, (), 0, view.messages)
    service = find_service(snapshot, name)
    if service is None:
        known = ", ".join(service_names(snapshot)) or "none"
        return exitcodes.USAGE, f"no service '{name}' in {where}; services: {known}"
    try:
        return exitcodes.OK, describe(snapshot, view.resources, service, query)
    except UnknownCaller as exc:
        return exitcodes.USAGE, f"--from: {exc}"


def _workloads(data: dict[str, Any]) -> set[str]:
    return {f"{w['namespace']}/{w['name']}" for w in data["service"]["workloads"]}


def _grid(title: str, *columns: str, wide: bool, fixed: tuple[str, ...] = ()) -> Grid:
    """A section table; columns other than `fixed` may be shortened (whole with -o wide)."""
    return Grid(title, [Column(c, flex=c not in fixed) for c in columns], wide)


def _kv(d: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in d.items()) or "-"


def render(console: Console, data: dict[str, Any], wide: bool = False) -> None:
    s = data["service"]
    console.print(f"[bold]Service[/] {s['hostname']}   selector: {_kv(s['selector'])}")
    ports = ", ".join(f"{p['port']}/{p['protocol']} ({p['name'] or '-'})" for p in s["ports"])
    console.print(f"  ports: {ports}")
    console.print(f"  identities: {', '.join(s['identities']) or '-'}")
    wl = _grid(
        "Workloads",
        "workload",
        "labels",
        "service account",
        "replicas",
        "sidecar",
        wide=wide,
        fixed=("replicas", "sidecar"),
    )
    for w in s["workloads"]:
        wl.add_row(
            escape(f"{w['namespace']}/{w['name']}"),
            escape(_kv(w["labels"])),
            escape(w["serviceAccount"]),
            str(w["replicas"]),
            "yes" if w["sidecar"] else "no",
        )
    wl.print(console)
    if data["virtualServices"]:
        vs = _grid("VirtualServices", "name", "gateways", "role", "rule", wide=wide)
        for v in data["virtualServices"]:
            role = v["role"] + (" (sidecars use it)" if v["activeForMesh"] else "")
            gateways = ",".join(v["gateways"]) or "-"
            for i, rule in enumerate(v["rules"] or ["-"]):  # one line per http rule
                first = i == 0
                vs.add_row(
                    escape(v["name"]) if first else "",
                    escape(gateways) if first else "",
                    escape(role) if first else "",
                    escape(f"[{i}] {rule}" if v["rules"] else "-"),
                )
        vs.print(console)
    else:
        console.print("VirtualServices: none (default route)")
    dr = data["destinationRules"]
    names = ", ".join(r["name"] for r in dr["rules"]) or "none"
    cl = _grid(f"DestinationRules: {names}", "cluster", "subset labels", "tls", "policy", wide=wide)
    for c in dr["clusters"]:
        cl.add_row(
            escape(c["cluster"]), escape(_kv(c["labels"])), escape(c["tls"]), escape(c["summary"])
        )
    cl.print(console)
    sec = _grid(
        "Security", "workload", "mTLS (per port)", "authorization", "jwt", "rate limits", wide=wide
    )
    for w in data["security"]:
        pa = w["peerAuthentication"]["ports"] or {"*": w["peerAuthentication"]["workload"]}
        modes = "; ".join(f"{p}: {d['mode']} ({d['policy'] or 'default'})" for p, d in pa.items())
        authz = "; ".join(f"{a}: {', '.join(i)}" for a, i in w["authorization"].items() if i)
        limits = "; ".join(f"{r['rateLimit']} {r['requests']}/{r['per']}" for r in w["rateLimits"])
        sec.add_row(
            escape(w["workload"]),
            escape(modes),
            escape(authz or "-"),
            escape(", ".join(w["requestAuthentication"]) or "-"),
            escape(limits or "-"),
        )
    sec.print(console)
    if data.get("route"):
        _render_route(console, data["route"])
    if data.get("live") is not None:
        lv = _grid("Live replicas", "proxy", "inbound", "sync", "nack", wide=wide)
        for p in data["live"]:
            sync = " ".join(f"{k}={v}" for k, v in (p["sync"] or {}).items())
            lv.add_row(
                escape(p["name"]), escape(str(p["inbound"])), escape(sync), escape(p["nack"] or "-")
            )
        lv.print(console)
    for m in data["messages"]:
        style = "red" if m["severity"] == "error" else "yellow"
        where = f"{m['file']}[{m['document']}] {m['kind']}/{m['name']} {m['path']}"
        console.print(f"[{style}]{m['severity']}[/] {escape(where)}: {escape(m['message'])}")


def _render_route(console: Console, r: dict[str, Any]) -> None:
    req = r["request"]
    headers = " ".join(f"{k}={v}" for k, v in req["headers"].items())
    caller = r["caller"] or "a caller in the service's namespace"
    console.print(
        f"[bold]Route[/] {req['method']} {req['path']} {headers} from {caller} "
        "(evaluated on the caller's Envoy route table)"
    )
    if r.get("note"):
        console.print(f"  {r['note']}")
    elif r["route"] is None:
        console.print(f"  no route of {r['virtualHost']} matches: Envoy answers 404")
    elif r["clusters"]:
        console.print(f"  route {r['route']}")
        for c in r["clusters"]:
            console.print(f"  → {c['cluster']}  weight {c['weight']}")
    elif r["redirect"]:
        console.print(f"  route {r['route']}: redirect to {r['redirect']}")
    else:
        console.print(f"  route {r['route']}: direct response {r['directResponse']}")
