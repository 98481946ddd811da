"""`plait dashboard` on the shop under traffic, seen by a real browser: its graph has every
edge of the shop, in the JSON API and drawn in the page (one SVG element per edge, after
the page's JavaScript ran), and a screenshot is a real picture with the nodes drawn.

The browser is Debian's Chromium, headless, driven by its command line alone:
`--dump-dom` prints the DOM once the page's scripts ran for `--virtual-time-budget` ms,
`--screenshot` writes a PNG. The PNG is decoded with zlib and struct (all filter types).
"""

from __future__ import annotations

import json
import os
import select
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from meshkit import Mesh

from plait.dashboard.page import NODE_FILL
from prockit import stop_process

pytestmark = pytest.mark.e2e

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
GATEWAY = "istio-ingressgateway.istio-system"
# caller → callee workload (examples/shop; reviews serves v1 only, recommendations is gRPC)
EDGES = {
    f"{GATEWAY}->frontend.default",
    "frontend.default->reviews-v1.default",
    "frontend.default->orders.default",
    "frontend.default->recommendations.default",
    "orders.default->inventory.default",
    "orders.default->payment.default",
    "payment.default->risk-assessment.default",
}
PATHS = ("/checkout?item=book&payment=invoice", "/product/book")
SIZE = (1280, 900)


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


def send_traffic(mesh: Mesh, rounds: int = 3) -> None:
    for _ in range(rounds):
        for path in PATHS:
            with urllib.request.urlopen(mesh.gateway + path, timeout=10) as resp:
                assert resp.status == 200, path


@pytest.fixture
def dashboard(shop: Mesh) -> Iterator[str]:
    """`plait dashboard DIR --port 0` running; yields its URL; stopped even on failure."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "plait", "dashboard", str(shop.root), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 20.0)
        line = proc.stdout.readline() if ready else ""
        assert "http://127.0.0.1:" in line, f"no URL from plait dashboard: {line!r}"
        yield line.split()[-1]
    finally:
        stop_process(proc)


def chromium(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", f"--user-data-dir={profile}", "--virtual-time-budget=10000",
             *args, url],
            capture_output=True, text=True, timeout=90,
        )  # fmt: skip


def png_pixels(data: bytes) -> tuple[int, int, set[tuple[int, ...]]]:
    """Width, height and the set of RGB colours of an 8-bit RGB or RGBA PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, b"", b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and colour in (2, 6) and interlace == 0, (depth, colour, interlace)
    bpp = 3 if colour == 2 else 4
    raw, stride = zlib.decompress(idat), width * bpp
    prev, colours = bytearray(stride), set[bytes]()
    for y in range(height):
        start = y * (stride + 1)
        kind, row = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            a = row[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if kind == 1:
                row[i] = (row[i] + a) & 0xFF
            elif kind == 2:
                row[i] = (row[i] + b) & 0xFF
            elif kind == 3:
                row[i] = (row[i] + (a + b) // 2) & 0xFF
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else b if pb <= pc else c
                row[i] = (row[i] + pred) & 0xFF
        colours.update(bytes(row[i : i + 3]) for i in range(0, stride, bpp))
        prev = row
    return width, height, {tuple(c) for c in colours}


def test_the_dashboard_graph_shows_every_shop_edge(
    shop: Mesh, dashboard: str, tmp_path: Path
) -> None:
    assert os.path.exists(CHROMIUM), "chromium missing: `make setup` installs it"
    page = urllib.request.urlopen(dashboard, timeout=5).read().decode()
    assert '<svg id="graph"' in page
    assert 'src="http' not in page and 'href="http' not in page, "the page loads nothing external"

    deadline, edges = time.monotonic() + 30, set()
    while not edges >= EDGES:
        assert time.monotonic() < deadline, f"missing edges in /api/graph: {EDGES - edges}"
        send_traffic(shop, rounds=1)
        graph = get_json(dashboard + "api/graph")
        edges = {e["id"] for e in graph["edges"]}
        time.sleep(0.5)
    by_id = {e["id"]: e for e in graph["edges"]}
    for edge in EDGES:
        assert by_id[edge]["totalRequests"] >= 1, by_id[edge]
        assert by_id[edge]["mtls"] == "mutual_tls", by_id[edge]
    nodes = {n["id"]: n for n in graph["nodes"]}
    assert nodes[GATEWAY]["kind"] == "gateway"
    # a second window of traffic gives rates and latencies on every edge
    deadline = time.monotonic() + 20
    while not all(by_id[e]["rps"] > 0 and by_id[e]["p99Ms"] is not None for e in EDGES):
        assert time.monotonic() < deadline, f"idle edges: {by_id}"
        send_traffic(shop, rounds=2)
        by_id = {e["id"]: e for e in get_json(dashboard + "api/graph")["edges"]}
    services = {s["service"] for s in get_json(dashboard + "api/services")["services"]}
    assert {"frontend", "orders", "payment", "reviews"} <= services, services
    proxies = get_json(dashboard + "api/proxies")["proxies"]
    assert proxies and all(set(p["sync"].values()) == {"SYNCED"} for p in proxies), proxies
    assert get_json(dashboard + "api/traces?limit=5")["traces"], "no traces proxied"

    dom = chromium(dashboard, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    for edge in EDGES:
        assert f'data-edge="{edge}"' in dom.stdout.replace("&gt;", ">"), (edge, dom.stdout[:3000])
    assert 'class="span"' in dom.stdout, "no trace waterfall drawn"

    shot = tmp_path / "dashboard.png"
    result = chromium(dashboard, f"--screenshot={shot}", f"--window-size={SIZE[0]},{SIZE[1]}")
    assert result.returncode == 0 and shot.exists(), result.stderr[-2000:]
    shutil.copy(shot, os.environ.get("PLAIT_DASHBOARD_PNG", tmp_path / "kept.png"))
    width, height, colours = png_pixels(shot.read_bytes())
    assert (width, height) == SIZE
    assert len(colours) > 10, colours
    fill = tuple(int(NODE_FILL[i : i + 2], 16) for i in (1, 3, 5))
    assert fill in colours, f"no node colour {NODE_FILL} in the screenshot"
