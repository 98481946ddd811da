"""`plait status`: the state file (what runs where) joined with the control plane's view."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import asdict
from pathlib import Path
from typing import Any

import aiohttp

from plait.local.statefile import read_state

XDS_TYPES = ("cds", "eds", "lds", "rds")


def get_json(url: str, timeout: float = 3.0) -> dict[str, Any]:
    """GET a JSON object from a loopback status URL plait made."""
    with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - loopback URL we made
        data: dict[str, Any] = json.loads(resp.read())
        return data


async def fetch_json(url: str, timeout: float = 3.0) -> dict[str, Any]:
    """`get_json` for code on an event loop. Raises OSError (unreachable, an HTTP error,
    a timeout) or ValueError (not JSON, or not an object)."""
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
            session.get(url) as resp,
        ):
            resp.raise_for_status()
            data = await resp.json(content_type=None)
    except aiohttp.ClientError as exc:
        raise OSError(f"{url}: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{url}: not a JSON object")
    return data


def metrics_url(status_url: str) -> str:
    """The control plane's Prometheus endpoint, served next to its `/status`."""
    return urllib.parse.urljoin(status_url, "/metrics")


def collect_status(root: Path) -> dict[str, Any]:
    """The JSON object of `plait status -o json` (shape in DESIGN.md; extra keys allowed).

    Raises MeshStateError when no mesh runs for root. If the control plane cannot be
    reached (e.g. it is restarting), proxies are listed with sync state UNKNOWN and the
    reason is in `controlPlane.error`.
    """
    state = read_state(root)
    cp: dict[str, Any]
    try:
        cp = get_json(state.status_url)
        cp_error = None
    except (OSError, urllib.error.URLError, ValueError) as exc:
        cp, cp_error = {}, f"control plane unreachable at {state.status_url}: {exc}"
    seen = {p["name"]: p for p in cp.get("proxies", [])}
    proxies = []
    for entry in state.proxies:
        xds = seen.get(entry.name, {})
        item = asdict(entry)
        item["metrics"] = entry.metrics
        item["connected"] = bool(xds.get("connected"))
        item["sync"] = xds.get("sync") or {t: "UNKNOWN" for t in XDS_TYPES}
        item["nack"] = xds.get("nack")
        item["generation"] = xds.get("generation")  # newest generation it fully ACKed
        proxies.append(item)
    return {
        "phase": state.phase,
        "mode": state.mode,
        "gateway": state.gateway,
        "gatewayPorts": state.gateway_ports,
        "controlPlane": {
            **cp.get("controlPlane", {}),
            "xds": state.xds,
            "metrics": metrics_url(state.status_url),
            "error": cp_error,
        },
        "proxies": proxies,
        "services": [asdict(svc) for svc in state.services],
        "errors": cp.get("errors", []),
        "warnings": cp.get("warnings", []),
        "keptLastGood": cp.get("keptLastGood", []),
        "ca": {**(cp.get("ca") or {}), "url": state.ca} if state.ca else None,
        "refusedProxies": cp.get("refusedProxies", []),
        # what failed in the background and is being retried: `plait up`'s own tasks,
        # the control plane's sources (their last good input stays), its snapshot build
        "problems": {
            **state.problems,
            **{f"source {k}": v for k, v in (cp.get("sourceErrors") or {}).items()},
            **({"snapshot": cp["internalError"]} if cp.get("internalError") else {}),
        },
    }
