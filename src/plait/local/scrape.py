"""Scraping every proxy of the running mesh once (for `plait top` and the dashboard):
each proxy's metrics URL from `.plait/state.json`, in the caller's thread pool, with a
short timeout; an unreachable proxy is left out of that scrape."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from plait.local.statefile import read_state
from plait.telemetry.top import Scrape, scrape_of

SCRAPE_TIMEOUT_S = 2.0


def _fetch(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=SCRAPE_TIMEOUT_S) as resp:  # noqa: S310 - loopback URL plait made
            text: str = resp.read().decode("utf-8", errors="replace")
            return text
    except (OSError, urllib.error.URLError, ValueError):
        return None


def scrape_mesh(root: Path, pool: ThreadPoolExecutor) -> Scrape:
    """Scrape every proxy the running mesh lists; raises MeshStateError without a mesh."""
    proxies = read_state(root).proxies
    at = time.monotonic()
    texts = pool.map(_fetch, [p.metrics for p in proxies])
    return scrape_of(at, {p.name: t for p, t in zip(proxies, texts, strict=True) if t is not None})
