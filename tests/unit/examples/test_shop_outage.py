"""The outage scenario's app side, without a mesh: risk-assessment's worker pool,
payment's shared capacity, payment's answer when the assessment is unavailable, and the
scenario's policy loading cleanly next to the shop."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
from shop_harness import SHOP, FakeUpstream, Launcher, call, get, post

POLICY = SHOP.parent / "scenarios" / "outage" / "policy.yaml"
ALICE = {"customer": "alice", "item": "book", "amount": 1}


async def test_risk_assessment_queues_beyond_its_workers(
    launcher: Launcher, http: aiohttp.ClientSession
) -> None:
    risk = launcher.start_deployment("risk-assessment", {}, RISK_WORKERS="1", RISK_DELAY_MS="200")
    launcher.ready(risk)
    start = time.monotonic()
    answers = await asyncio.gather(*(post(http, f"{risk.url}/assess", ALICE) for _ in range(3)))
    elapsed = time.monotonic() - start
    assert all(status == 200 for status, _ in answers), answers
    # One worker: the three assessments run one after the other.
    assert sorted(doc["queued_ms"] >= 150 for _, doc in answers) == [False, True, True]
    assert max(doc["queued_ms"] for _, doc in answers) >= 350
    assert elapsed >= 0.6
    status, stats = await get(http, f"{risk.url}/stats")
    assert status == 200 and stats["workers"] == 1 and stats["served"] == 3
    assert stats["max_queued"] == 2 and stats["queued"] == stats["busy"] == 0
    assert stats["rss_kib"] > 1000 and stats["peak_rss_kib"] >= stats["rss_kib"]


async def test_card_charges_wait_behind_invoices_for_payments_workers(
    launcher: Launcher, http: aiohttp.ClientSession
) -> None:
    risk = launcher.start_deployment("risk-assessment", {}, RISK_DELAY_MS="400")
    launcher.ready(risk)
    payment = launcher.start_deployment(
        "payment", {"risk-assessment": risk.url}, PAYMENT_WORKERS="1"
    )
    launcher.ready(payment)
    invoice = asyncio.create_task(
        post(http, f"{payment.url}/charge", ALICE | {"method": "invoice"})
    )
    await asyncio.sleep(0.1)  # the invoice holds the only worker (risk takes 400 ms)
    _, stats = await get(http, f"{payment.url}/stats")
    assert stats["busy"] == 1 and stats["workers"] == 1, stats
    status, card = await post(http, f"{payment.url}/charge", ALICE | {"method": "card"})
    assert status == 200 and card["approved"] is True
    assert card["queued_ms"] >= 200, card  # it waited for the invoice's worker
    status, doc = await invoice
    assert status == 200 and doc["queued_ms"] < 100
    _, stats = await get(http, f"{payment.url}/stats")
    assert stats["max_queued"] == 1 and stats["served"] == 2 and stats["queued"] == 0


async def test_an_unavailable_assessment_makes_invoice_fail_fast_with_502(
    launcher: Launcher, fake: FakeUpstream, http: aiohttp.ClientSession
) -> None:
    payment = launcher.start_deployment("payment", {"risk-assessment": fake.url})
    launcher.ready(payment)
    charge = ALICE | {"method": "invoice"}
    # The sidecar's answers under the outage policy: rate limited, overflow, timeout.
    for status, body in (
        (429, "local_rate_limited"),
        (503, "upstream connect error or disconnect/reset before headers. reset reason: overflow"),
        (504, "upstream request timeout"),
    ):
        fake.answers["/assess"] = (status, body)
        got, doc = await post(http, f"{payment.url}/charge", charge)
        assert got == 502, doc
        assert doc["error"].startswith("invoice payment unavailable right now"), doc
        assert doc["approved"] is False and call(doc, "risk-assessment")["status"] == status
    # A refused request is our bug, not a passing outage: still 502, said differently.
    fake.answers["/assess"] = (400, {"error": "'customer' must be a non-empty string"})
    got, doc = await post(http, f"{payment.url}/charge", charge)
    assert got == 502 and doc["error"].startswith("invoice payment failed"), doc
    got, doc = await post(http, f"{payment.url}/charge", ALICE | {"method": "card"})
    assert got == 200 and doc["approved"] is True


def test_the_outage_policy_loads_next_to_the_shop(tmp_path: Path) -> None:
    root = tmp_path / "shop"
    shutil.copytree(SHOP, root, ignore=shutil.ignore_patterns(".plait", "__pycache__"))
    shutil.copy(POLICY, root / "outage-policy.yaml")
    done = subprocess.run(
        [sys.executable, "-m", "plait", "analyze", str(root)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 errors, 0 warnings" in done.stdout, done.stdout
    # The shop itself does not carry it: plait loads every YAML file below a mesh directory.
    assert not list(SHOP.rglob("*outage*.yaml"))
