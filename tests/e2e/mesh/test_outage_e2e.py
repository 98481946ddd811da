"""The outage of article 000, shortened: the policy contains it, and without it the shop
degrades (so the policy is what helps).

One shop mesh with the scenario's slow risk-assessment (2 workers x 100 ms: 20
assessments/s). The same open-loop load runs twice through the gateway: card checkouts at
10/s throughout, invoice checkouts at 40/s (twice what risk-assessment can take) after the
first second. First with examples/scenarios/outage/policy.yaml applied (it runs first so
that payment's memory is measured on a process that has not already grown), then with the
policy removed again. The load, the sampler and the policy handling are bench/outage's.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from meshkit import REPO, SHOP, Mesh, copy_mesh, processes_under

sys.path.insert(0, str(REPO))  # bench/ is a top-level package of the repository
from bench.outage import (  # noqa: E402
    CARD,
    INVOICE,
    apply_policy,
    remove_policy,
    slow_risk,
    stats_sampler,
)
from bench.outage_load import Run, Stream, drive, summarize, window  # noqa: E402

CARD_RPS, INVOICE_RPS = 10, 40
SURGE_FROM = 1.0
TIMEOUT_S = 4.0
PROTECTED_S, UNPROTECTED_S = 8.0, 6.0


@pytest.fixture(scope="module")
def outage_shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    root = copy_mesh(SHOP, tmp_path_factory.mktemp("outage") / "shop")
    slow_risk(root)
    mesh = Mesh(root)
    result = mesh.up()
    try:
        assert result.returncode == 0, f"plait up failed:\n{result.stdout}\n{result.stderr}"
        yield mesh
    finally:
        down = mesh.down()
        left = processes_under(root)
        assert down.returncode == 0, down.stderr
        assert not left, f"processes left behind after plait down: {left}"


async def surge(mesh: Mesh, seconds: float) -> Run:
    streams = [
        Stream("card", CARD, CARD_RPS, 0.0, seconds),
        Stream("invoice", INVOICE, INVOICE_RPS, SURGE_FROM, seconds),
    ]
    return await drive(mesh.gateway, streams, timeout_s=TIMEOUT_S, sampler=stats_sampler(mesh.root))


def series(run: Run, key: str) -> list[Any]:
    return [s[key] for s in run.samples if s.get(key) is not None]


async def test_the_policy_contains_the_outage_and_without_it_the_shop_degrades(
    outage_shop: Mesh,
) -> None:
    mesh = outage_shop
    await asyncio.to_thread(apply_policy, mesh.root)
    run = await surge(mesh, PROTECTED_S)
    card = summarize(window(run, "card", SURGE_FROM, run.duration_s))
    invoice = summarize(window(run, "invoice", SURGE_FROM, run.duration_s))
    rss = series(run, "payment_rss_kib")
    context = f"card {card}\ninvoice {invoice}\nsamples {run.samples[::4]}"
    assert len(rss) >= 10, context

    # The healthy path: every card checkout succeeds, fast, all through the surge.
    assert card["requests"] == round(CARD_RPS * (PROTECTED_S - SURGE_FROM)), context
    assert card["errors"] == 0, context
    assert card["p99_ms"] < 500, context
    # Invoice checkouts: what risk-assessment can take gets through (the rate limit admits
    # 15/s of the 40/s); the rest fail fast (429, 503 overflow or the 300 ms timeout, in
    # each case a 502 from payment), nowhere near the client's 4 s.
    sent = round(INVOICE_RPS * (PROTECTED_S - SURGE_FROM))
    assert invoice["requests"] == sent, context
    assert 0.25 * sent <= invoice["requests"] - invoice["errors"] <= 0.6 * sent, context
    assert invoice["timeouts"] == 0 and invoice["error_p99_ms"] < 1000, context
    failed = {o.status for o in window(run, "invoice", 0, run.duration_s) if not o.ok}
    assert failed == {502}, context  # payment's "unavailable right now", passed up
    # payment never queues and its memory stays flat.
    assert max(series(run, "payment_queued")) <= 2, context
    assert max(rss) - rss[0] < 2 * 1024, context

    # The same surge without the policy: payment's workers all wait on risk-assessment,
    # card checkouts queue behind them, and their latency grows second by second.
    await asyncio.to_thread(remove_policy, mesh.root)
    run = await surge(mesh, UNPROTECTED_S)
    card = summarize(window(run, "card", SURGE_FROM, run.duration_s))
    late = summarize(window(run, "card", 4.0, run.duration_s))
    context = f"card {card}\nlate {late}\nsamples {run.samples[::4]}"
    assert max(series(run, "payment_busy")) == 32, context
    assert max(series(run, "payment_queued")) >= 20, context
    assert late["p50_ms"] > 1500 and card["p99_ms"] > 2000, context
