"""Fixtures for agent e2e tests: free ports, a stub ADS server, supervised Envoys.

Every Envoy a test starts through `envoys` is stopped at teardown, and when the test
failed its log and config dump are printed first.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Generator
from pathlib import Path
from typing import Any

import pytest
from ads_stub import AdsServer, StubAds
from agent_e2e import EnvoyFactory, make_proxy, print_diagnostics

from plait.agent.bootstrap import BootstrapOptions, XdsProtocol
from plait.agent.supervisor import EnvoySupervisor, SupervisorOptions
from plait.model.proxy import Proxy


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
async def ads() -> AsyncIterator[AdsServer]:
    async with AdsServer(StubAds()) as server:
        yield server


@pytest.fixture
async def envoys(
    request: pytest.FixtureRequest, tmp_path: Path, ads: AdsServer
) -> AsyncIterator[EnvoyFactory]:
    made: list[EnvoySupervisor] = []

    def make(proxy: Proxy | None = None, admin_port: int = 0, **options: Any) -> EnvoySupervisor:
        config = BootstrapOptions(
            proxy=proxy or make_proxy(f"web-{len(made)}"),
            admin_port=admin_port,
            xds_host="127.0.0.1",
            xds_port=ads.port,
            xds_protocol=XdsProtocol.SOTW,  # the stub speaks the State of the World only
        )
        sup = EnvoySupervisor(config, tmp_path, options=SupervisorOptions(**options))
        made.append(sup)
        return sup

    yield make

    report = getattr(request.node, "report_call", None)
    failed = report is None or report.failed
    for sup in made:
        if failed:
            await print_diagnostics(sup)
        await sup.stop()
