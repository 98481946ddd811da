"""Fixtures for xDS e2e tests: plait's ADS server in this process, real Envoys
bootstrapped by the agent's bootstrap (delta ADS, or the State of the World where a test
asks), real HTTP backends.

Every Envoy is stopped at teardown; when the test failed, its log and config dump are
printed first. The ADS server is stopped at teardown whatever the test did with it.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[2] / "component" / "xds"))  # ads_testkit
sys.path.insert(0, str(Path(__file__).parents[1] / "agent"))  # agent_e2e

from agent_e2e import print_diagnostics  # noqa: E402
from deltakit import AdsHarness  # noqa: E402


@pytest.fixture
async def harness(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AdsHarness]:
    running = AdsHarness(tmp_path)
    try:
        yield running
    finally:
        report = getattr(request.node, "rep_call", None)  # (tests/e2e/conftest.py)
        if report is None or report.failed:
            for sup in running.envoys:
                await print_diagnostics(sup)
        await running.close()
