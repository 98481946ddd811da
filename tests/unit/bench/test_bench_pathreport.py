"""`bench.pathreport.rate_corrected`: the per-request term of instructions = a × requests +
b × seconds, with b shared by all pairs, recovered whatever rate each rep ran at."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # bench/ is a top-level package

from bench.pathreport import rate_corrected  # noqa: E402


def _pair(a: float, b: float, rates: list[float]) -> dict[str, Any]:
    """Client and server each do a/2 per request and b/2 per second."""
    side = [a / 2 + b / 2 / r for r in rates]
    return {"client": {"all": side}, "server": {"all": side}, "rps": {"all": rates}}


def test_the_per_second_work_does_not_move_the_per_request_figure() -> None:
    b = 1_000_000.0  # per second: 40k per request at 25 req/s, 13k at 75
    result = {
        "observed": _pair(860_000, b, [25, 60, 75]),
        "plait": _pair(900_000, b, [70, 30, 50]),
    }
    fitted = rate_corrected(result)
    assert fitted["observed"] == pytest.approx(860_000)
    assert fitted["plait"] == pytest.approx(900_000)
    raw = sum(result["plait"]["client"]["all"]) / sum(result["observed"]["client"]["all"])
    assert abs(raw - 900 / 860) > 0.001  # the medians alone would be off


def test_without_per_second_work_it_is_the_mean() -> None:
    result = {"observed": _pair(800_000, 0.0, [40, 50]), "plait": _pair(820_000, 0.0, [45, 47])}
    assert rate_corrected(result) == pytest.approx({"observed": 800_000, "plait": 820_000})
