"""The outage scenario's plot: the two phases side by side, second by second.

One column per phase, one row per question, the same y scale across a row so the phases
compare at a glance: how long did checkouts take (log scale), how many failed, how many
requests piled up, how much memory did the services hold. The invoice surge is shaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt  # noqa: E402

CARD, INVOICE = "tab:blue", "tab:orange"


def _col(rows: list[dict[str, Any]], key: str) -> tuple[list[float], list[Any]]:
    # the middle of each one-second bucket
    return [r["t"] + 0.5 for r in rows], [r[key] for r in rows]


def plot(results: dict[str, Any], path: Path) -> None:
    phases = results["phases"]
    scenario = results["scenario"]
    surge = (scenario["warmup_s"], scenario["warmup_s"] + scenario["surge_s"])
    fig, axes = plt.subplots(4, len(phases), figsize=(12, 11), sharex=True, sharey="row")
    for col, phase in enumerate(phases):
        card, invoice = phase["per_second"]["card"], phase["per_second"]["invoice"]
        samples = phase["run"]["samples"]
        t = [s["t"] for s in samples]
        lat, err, pile, mem = (axes[row][col] for row in range(4))
        lat.set_title(phase["name"], fontsize=13, fontweight="bold")

        lat.plot(*_col(card, "p99_ms"), color=CARD, lw=2, label="card p99")
        lat.plot(*_col(card, "p50_ms"), color=CARD, lw=1, ls="--", label="card p50")
        lat.plot(*_col(invoice, "p50_ms"), color=INVOICE, lw=1, ls="--", label="invoice p50")
        lat.set_yscale("log")
        lat.axhline(scenario["timeout_s"] * 1000, color="grey", lw=0.8, ls=":")

        err.plot(*_pct(card), color=CARD, lw=2, label="card")
        err.plot(*_pct(invoice), color=INVOICE, lw=1.5, label="invoice")
        err.set_ylim(-5, 105)

        pile.plot(t, [s.get("in_flight") for s in samples], color="tab:red", lw=1.5,
                  label="checkouts in flight (sent, not answered)")  # fmt: skip
        pile.plot(t, [s.get("payment_queued") for s in samples], color="tab:purple", lw=1.5,
                  label="payment queue")  # fmt: skip
        pile.plot(t, [s.get("payment_busy") for s in samples], color="tab:purple", lw=1,
                  ls=":", label="payment busy workers")  # fmt: skip

        mem.plot(t, [_mib(s.get("payment_rss_kib")) for s in samples], color="tab:purple",
                 lw=1.5, label="payment")  # fmt: skip
        mem.plot(t, [_mib(s.get("frontend_rss_kib")) for s in samples], color="tab:green",
                 lw=1.5, label="frontend")  # fmt: skip
        mem.set_xlabel("seconds (load starts at 0)")

        for ax in (lat, err, pile, mem):
            ax.axvspan(*surge, color="tab:orange", alpha=0.08, lw=0)
            ax.grid(True, alpha=0.3)
    left = axes[:, 0]
    left[0].set_ylabel("checkout latency (ms)")
    left[1].set_ylabel("checkouts failed (%)")
    left[2].set_ylabel("requests")
    left[3].set_ylabel("resident memory (MiB)")
    for ax in axes[:, -1]:
        ax.legend(loc="upper right", fontsize=8)
    env = results["risk_env"]
    capacity = int(env["RISK_WORKERS"]) * 1000 / int(env["RISK_DELAY_MS"])
    fig.suptitle(
        f"The outage of article 000: an invoice surge ({scenario['invoice_rps']:g}/s, shaded) "
        f"on a risk assessment that takes {capacity:g}/s,\nwith card checkouts at "
        f"{scenario['card_rps']:g}/s all along (dotted line: the client's {scenario['timeout_s']:g} s timeout)",
        fontsize=11,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _pct(rows: list[dict[str, Any]]) -> tuple[list[float], list[float]]:
    x, rates = _col(rows, "error_rate")
    return x, [100 * r for r in rates]


def _mib(kib: int | None) -> float | None:
    return None if kib is None else kib / 1024
