"""Fixtures for delta xDS e2e tests: plait's ADS server in this process, real Envoys
bootstrapped by the agent's bootstrap (delta ADS), real HTTP backends.

Every Envoy is stopped at teardown; when the test failed, its log and config dump are
printed first. The ADS server is stopped at teardown whatever the test did with it.
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator, Generator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parents[2] / "component" / "xds"))  # ads_testkit
sys.path.insert(0, str(Path(__file__).parents[1] / "agent"))  # agent_e2e

from deltakit import AdsHarness  # noqa: E402

from plait.agent import admin  # noqa: E402
from plait.errors import EnvoyError  # noqa: E402


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
async def harness(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AdsHarness]:
    running = AdsHarness(tmp_path)
    try:
        yield running
    finally:
        report = getattr(request.node, "report_call", None)
        if report is None or report.failed:
            for sup in running.envoys:
                await _print_diagnostics(sup)
        await running.close()


async def _print_diagnostics(sup: Any) -> None:
    print(f"===== Envoy {sup.name}: pid={sup.pid} log {sup.log_path}")
    print(sup.log_tail(200))
    if sup.admin_url is not None:
        try:
            dump = await admin.config_dump(sup.admin_url)
        except EnvoyError as exc:
            print(f"(no config dump: {exc})")
        else:
            print(json.dumps(_without_extensions(dump), indent=1)[:30000])


def _without_extensions(doc: Any) -> Any:
    """The dump minus the node's list of every compiled-in extension (hundreds of lines)."""
    if isinstance(doc, dict):
        return {k: _without_extensions(v) for k, v in doc.items() if k != "extensions"}
    if isinstance(doc, list):
        return [_without_extensions(v) for v in doc]
    return doc
