"""Rich rendering of config messages, proxies and services."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from plait.errors import ConfigMessage, Severity


def messages_table(messages: Sequence[ConfigMessage]) -> Table:
    table = Table(title="configuration", show_lines=False)
    for col in ("severity", "file", "doc", "resource", "field", "message"):
        table.add_column(col, overflow="fold")
    for m in messages:
        style = "red" if m.severity == Severity.ERROR else "yellow"
        table.add_row(
            f"[{style}]{m.severity.value}[/]",
            m.file,
            str(m.document),
            f"{m.kind}/{m.name}" if m.kind else "",
            m.path,
            m.message,
        )
    return table


def print_messages(console: Console, messages: Sequence[ConfigMessage]) -> None:
    if messages:
        console.print(messages_table(messages))


_STATE_STYLE = {"SYNCED": "green", "STALE": "yellow", "NACK": "red", "NOT SENT": "dim"}


def _identity(proxy: dict[str, Any]) -> str:
    """The SPIFFE ID its certificate names, shortened to NAMESPACE/SERVICE_ACCOUNT."""
    uri = str(proxy.get("identity") or "")
    if "/ns/" not in uri:
        return "-"
    _, _, rest = uri.partition("/ns/")
    namespace, _, account = rest.partition("/sa/")
    return f"{namespace}/{account}"


def proxies_table(proxies: Iterable[dict[str, Any]]) -> Table:
    table = Table(title="proxies")
    table.add_column("proxy", no_wrap=True)
    for col in (
        "kind",
        "workload",
        "identity",
        "inbound",
        "outbound",
        "admin",
        "cds",
        "eds",
        "lds",
        "rds",
    ):
        table.add_column(col, overflow="fold")
    nacks: list[str] = []
    for p in proxies:
        sync = p.get("sync") or {}
        cells = [
            f"[{_STATE_STYLE.get(sync.get(t, ''), 'white')}]{sync.get(t, '-')}[/]"
            for t in ("cds", "eds", "lds", "rds")
        ]
        table.add_row(
            p["name"],
            p["kind"],
            p["workload"],
            _identity(p),
            p.get("inbound") or "",
            p.get("outbound") or "",
            p.get("admin") or "",
            *cells,
        )
        if p.get("nack"):
            nacks.append(f"{p['name']}: {p['nack']}")
    if nacks:
        table.caption = "NACK: " + " | ".join(nacks)
    return table


def services_table(services: Iterable[dict[str, Any]]) -> Table:
    """Services with the URL apps use, their replicas and endpoints (after `plait up`)."""
    table = Table(title="services")
    for col in ("service", "url (from apps)", "replicas", "endpoints (sidecar inbound)"):
        table.add_column(col, overflow="fold")
    for s in services:
        name = s["name"] if s["namespace"] == "default" else f"{s['namespace']}/{s['name']}"
        table.add_row(
            name, " ".join(s["urls"]), " ".join(s["replicas"]) or "-", " ".join(s["endpoints"])
        )
    return table
