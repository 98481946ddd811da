"""Rich rendering of config messages, proxies and services.

Tables are drawn as `kubectl get` draws them (`Grid`): no borders, upper-case headers,
two spaces between columns, one line per row. In a narrow terminal the long columns
(`flex`) are shortened with `…` so that no row wraps; `-o wide` shows every value whole
and adds the `wide`-only columns (lines may then be longer than the terminal, as in
kubectl). JSON output is never affected.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console, ConsoleOptions, RenderResult
from rich.markup import escape
from rich.padding import Padding
from rich.text import Text

from plait.errors import ConfigMessage, Severity

GAP = 2
"""Spaces between columns."""
DETAIL_INDENT = "  "
"""A detail line (a message under its row) starts with this; data rows never do."""
MIN_FLEX = 10
"""A shortened column keeps at least this many characters."""


@dataclass(frozen=True)
class Column:
    """`flex`: may be shortened to fit the terminal; `wide`: shown with `-o wide` only;
    `detail`: a long text (a message) shown whole on an indented line under its row, or
    as the last column with `-o wide`."""

    header: str
    flex: bool = False
    wide: bool = False
    right: bool = False
    detail: bool = False


@dataclass
class Grid:
    """A borderless table; cells are rich markup (escape user text with `escape`)."""

    title: str
    columns: Sequence[Column]
    wide: bool = False
    rows: list[list[Text]] = field(default_factory=list)

    def add_row(self, *cells: str) -> None:
        if len(cells) != len(self.columns):
            raise ValueError(f"{len(cells)} cells for {len(self.columns)} columns")
        self.rows.append([Text.from_markup(c) for c in cells])

    def lines(self, width: int) -> tuple[list[Text], bool]:
        """The rendered lines (title, header, rows) for a terminal `width` columns wide,
        and whether a value was shortened."""
        shown = [i for i, c in enumerate(self.columns) if self.wide or not (c.wide or c.detail)]
        details = [i for i, c in enumerate(self.columns) if c.detail and not self.wide]
        headers = [Text(self.columns[i].header.upper(), style="bold") for i in shown]
        table = [headers, *([row[i] for i in shown] for row in self.rows)]
        widths = [max(r[j].cell_len for r in table) for j in range(len(shown))]
        if not self.wide:
            widths = _fit(widths, [self.columns[i].flex for i in shown], width)
        shortened = False
        out = [Text(self.title, style="bold")] if self.title else []
        for n, r in enumerate(table):
            line = Text()
            for j, cell in enumerate(r):
                cell = cell.copy()
                if cell.cell_len > widths[j]:
                    cell.truncate(widths[j], overflow="ellipsis")
                    shortened = True
                last = j == len(r) - 1
                pad = widths[j] - cell.cell_len
                if self.columns[shown[j]].right:
                    line.append(" " * pad)
                    line.append_text(cell)
                else:
                    line.append_text(cell)
                    line.append("" if last else " " * pad)
                line.append("" if last else " " * GAP)
            out.append(line)
            if n:  # a data row: its details below it
                out += [Text(DETAIL_INDENT).append_text(self.rows[n - 1][i]) for i in details]
        return out, shortened

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        lines, _ = self.lines(options.max_width)
        yield from lines

    def print(self, console: Console) -> None:
        lines, shortened = self.lines(console.width)
        for line in lines:
            if self.wide:
                console.print(line, crop=False, soft_wrap=True)
            elif line.plain.startswith(DETAIL_INDENT):  # read whole: wrapped, indented
                console.print(
                    Padding(line[len(DETAIL_INDENT) :], (0, 0, 0, len(DETAIL_INDENT)), expand=False)
                )
            else:
                console.print(line, no_wrap=True, crop=True)
        if shortened:
            console.print("[dim](long values shortened: -o wide shows them whole)[/]")


def _fit(widths: list[int], flex: list[bool], width: int) -> list[int]:
    """Shorten the flexible columns until the row fits `width`, always the widest one by
    one character, so that they end up evenly shortened (none below MIN_FLEX)."""
    widths = list(widths)
    excess = sum(widths) + GAP * (len(widths) - 1) - width
    while excess > 0:
        candidates = [j for j, f in enumerate(flex) if f and widths[j] > MIN_FLEX]
        if not candidates:
            break
        widths[max(candidates, key=lambda k: widths[k])] -= 1
        excess -= 1
    return widths


def messages_table(
    messages: Sequence[ConfigMessage], wide: bool = False, title: str = "configuration"
) -> Grid:
    """One line per message (level, file, document, resource), the field path and what
    to do under it; `-o wide`: all on one line."""
    grid = Grid(
        title,
        [
            Column("level"),
            Column("file", flex=True),
            Column("doc", right=True),
            Column("resource", flex=True),
            Column("field", wide=True),
            Column("message", detail=True),
        ],
        wide,
    )
    for m in messages:
        style = "red" if m.severity == Severity.ERROR else "yellow"
        text = escape(m.message)
        grid.add_row(
            f"[{style}]{m.severity.value}[/]",
            escape(m.file),
            str(m.document),
            escape(f"{m.kind}/{m.name}" if m.kind else "-"),
            escape(m.path or "-"),
            text if wide or not m.path else f"[bold]{escape(m.path)}[/]: {text}",
        )
    return grid


def print_messages(console: Console, messages: Sequence[ConfigMessage], wide: bool = False) -> None:
    if messages:
        messages_table(messages, wide).print(console)


_STATE_STYLE = {"SYNCED": "green", "STALE": "yellow", "NACK": "red", "NOT SENT": "dim"}
_TYPES = ("cds", "eds", "lds", "rds")


def _identity(proxy: dict[str, Any]) -> str:
    """The SPIFFE ID its certificate names, shortened to NAMESPACE/SERVICE_ACCOUNT."""
    uri = str(proxy.get("identity") or "")
    if "/ns/" not in uri:
        return "-"
    _, _, rest = uri.partition("/ns/")
    namespace, _, account = rest.partition("/sa/")
    return f"{namespace}/{account}"


def sync_summary(sync: dict[str, Any]) -> str:
    """`SYNCED` when every type is, else each type's state: `NACK(rds) STALE(cds)`."""
    states = {t: str(sync.get(t, "-")) for t in _TYPES}
    if all(s == "SYNCED" for s in states.values()):
        return "[green]SYNCED[/]"
    groups: dict[str, list[str]] = {}
    for t, s in states.items():
        if s != "SYNCED":
            groups.setdefault(s, []).append(t)
    return " ".join(
        f"[{_STATE_STYLE.get(s, 'white')}]{escape(s)}({','.join(ts)})[/]"
        for s, ts in groups.items()
    )


def proxies_table(proxies: Iterable[dict[str, Any]], wide: bool = False) -> Grid:
    grid = Grid(
        "proxies",
        [
            Column("name", flex=True),
            Column("kind"),
            Column("workload", flex=True),
            Column("identity", flex=True),
            Column("sync", flex=True),
            Column("inbound", wide=True),
            Column("outbound", wide=True),
            Column("admin", wide=True),
        ],
        wide,
    )
    for p in proxies:
        grid.add_row(
            escape(p["name"]),
            escape(p["kind"]),
            escape(p["workload"]),
            escape(_identity(p)),
            sync_summary(p.get("sync") or {}),
            escape(p.get("inbound") or "-"),
            escape(p.get("outbound") or "-"),
            escape(p.get("admin") or "-"),
        )
    return grid


def print_nacks(console: Console, proxies: Iterable[dict[str, Any]]) -> None:
    """Envoy's error for each NACKing proxy, whole (it wraps: it is the point)."""
    for p in proxies:
        if p.get("nack"):
            console.print(f"[red]NACK[/] {escape(p['name'])}: {escape(str(p['nack']))}")


def services_table(services: Iterable[dict[str, Any]], wide: bool = False) -> Grid:
    """Services with the URL apps use, their replicas and endpoints (after `plait up`)."""
    grid = Grid(
        "services",
        [
            Column("service"),
            Column("url (from apps)", flex=True),
            Column("replicas", flex=True),
            Column("endpoints (sidecar inbound)", flex=True),
        ],
        wide,
    )
    for s in services:
        name = s["name"] if s["namespace"] == "default" else f"{s['namespace']}/{s['name']}"
        grid.add_row(
            escape(name),
            escape(" ".join(s["urls"])),
            escape(" ".join(s["replicas"]) or "-"),
            escape(" ".join(s["endpoints"])),
        )
    return grid
