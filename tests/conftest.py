"""Shared by the whole suite: pytest puts this directory on sys.path, so helpers here
(`testpki`) are importable from every test directory.

`make test` runs the suite on two pytest-xdist workers (`-n 2 --dist loadscope`), with
the units of work decided here (`work_unit`): most of an e2e run is waiting on processes
and the network, so two workers finish in about half the time on two cores. The `solo`
modules (`SOLO`) run after that, alone."""

from __future__ import annotations

import os
from typing import Any

import pytest

HOST_NETWORK = ("tests/e2e/capture/", "tests/e2e/kube/")
"""Directories whose tests change the host's network (namespaces, veth, iptables) and
compare it before and after (`capturekit.host_snapshot`), or share the session's
Kubernetes cluster: their tests run one after another on one worker."""


SOLO = {
    "tests/e2e/mesh/test_outage_e2e.py": "the healthy path's p99 under a surge",
    "tests/e2e/mesh/test_config_e2e.py": "an edit ACKed by every proxy within 1 s",
    "tests/e2e/observability/test_istio_metrics_e2e.py": "metrics complete within 2 s",
    "tests/e2e/observability/test_top_e2e.py": "frames every 1 s, Ctrl-C obeyed within 10 s",
    "tests/e2e/kube/test_discovery_e2e.py": "a kubectl edit ACKed within 1 s",
}
"""Modules whose assertions are deadlines or latencies that hold on a quiet machine (why,
by module): marked `solo`, so `make test` runs them after the parallel part, one at a
time, with nothing beside them."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.nodeid.split("::", 1)[0] in SOLO:
            item.add_marker(pytest.mark.solo)


def work_unit(nodeid: str) -> str:
    """What one xdist worker runs as a whole: the host-network directories together; any
    other e2e module whole (its tests share the module's mesh); every other test alone."""
    if nodeid.startswith(HOST_NETWORK):
        return "host-network"
    if nodeid.startswith("tests/e2e/"):
        return nodeid.split("::", 1)[0]
    return nodeid


def pytest_configure(config: pytest.Config) -> None:
    """An xdist worker runs with COLUMNS=80 and LINES=24 in its environment, which a
    terminal-less pytest does not have; rich's consoles, made when `plait.cli` is imported,
    would keep that width. Tests that care set COLUMNS for their command."""
    if hasattr(config, "workerinput"):
        for name in ("COLUMNS", "LINES"):
            os.environ.pop(name, None)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`--dist loadscope` with `work_unit` as the scope (largest units first, as xdist
    orders scopes by size); any other `--dist` is xdist's own."""
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class WorkUnits(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    return WorkUnits(config, log)
