"""`plait status` tables: a proxy's identity is shown as NAMESPACE/SERVICE_ACCOUNT."""

from __future__ import annotations

from rich.console import Console

from plait.cli.render import proxies_table


def test_the_proxies_table_shows_each_proxys_identity() -> None:
    proxy = {
        "name": "sidecar~client-0.default",
        "kind": "sidecar",
        "workload": "client",
        "identity": "spiffe://cluster.local/ns/default/sa/client",
        "sync": {"cds": "SYNCED", "eds": "SYNCED", "lds": "SYNCED", "rds": "SYNCED"},
    }
    unknown = {**proxy, "name": "sidecar~old-0.default", "identity": None}
    console = Console(record=True, width=200)
    console.print(proxies_table([proxy, unknown]))
    text = console.export_text()
    assert "default/client" in text
    row = next(line for line in text.splitlines() if "old-0" in line)
    assert " - " in row
