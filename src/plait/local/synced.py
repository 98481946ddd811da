"""When `plait up` counts the mesh as synced: every proxy it runs has ACKed the
generation that holds every registered replica's endpoints, read from the control
plane's `/status`."""

from __future__ import annotations

from typing import Any

from plait.errors import StartupError
from plait.local.status import fetch_json
from plait.local.waits import poll_until


def all_acked(status: dict[str, Any], expected: set[str], instances: set[str]) -> bool:
    """Whether `status` (the control plane's) shows every `expected` proxy ACKing the
    generation that has every one of `instances`."""
    cp = status.get("controlPlane", {})
    if instances != set(cp.get("instances", [])):
        return False  # the control plane has not read the current registry yet
    done = {
        p["name"]
        for p in status.get("proxies", [])
        if p.get("connected")
        and (p.get("generation") or 0) >= cp.get("generation", 0)
        and all(v in ("SYNCED", "NOT SENT") for v in p["sync"].values())
        and p["sync"].get("cds") == "SYNCED"
        and p["sync"].get("lds") == "SYNCED"
    }
    return expected <= done


async def wait_synced(
    status_url: str, expected: set[str], instances: set[str], timeout: float
) -> None:
    """Until `all_acked`; on timeout a StartupError that lists the NACKs seen last."""
    last: dict[str, Any] = {}

    async def synced() -> bool:
        nonlocal last
        try:
            last = await fetch_json(status_url, timeout=1.0)
        except (OSError, ValueError):
            return False
        return all_acked(last, expected, instances)

    try:
        await poll_until(synced, timeout, "every proxy to ACK its configuration", 0.1)
    except StartupError as exc:
        nacks = [f"{p['name']}: {p['nack']}" for p in last.get("proxies", []) if p.get("nack")]
        raise StartupError(str(exc) + ("; NACKs: " + "; ".join(nacks) if nacks else "")) from exc
