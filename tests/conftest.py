"""Shared by the whole suite: pytest puts this directory on sys.path, so helpers here
(`testpki`) are importable from every test directory.

`make test` runs the suite on two pytest-xdist workers (`-n 2 --dist loadscope`), with
the units of work decided here (`work_unit`): most of an e2e run is waiting on processes
and the network, so two workers finish in about half the time on two cores."""

from __future__ import annotations

from typing import Any

import pytest

HOST_NETWORK = ("tests/e2e/capture/", "tests/e2e/kube/")
"""Directories whose tests change the host's network (namespaces, veth, iptables) and
compare it before and after (`capturekit.host_snapshot`), or share the session's
Kubernetes cluster: their tests run one after another on one worker."""


def work_unit(nodeid: str) -> str:
    """What one xdist worker runs as a whole: the host-network directories together; any
    other e2e module whole (its tests share the module's mesh); every other test alone."""
    if nodeid.startswith(HOST_NETWORK):
        return "host-network"
    if nodeid.startswith("tests/e2e/"):
        return nodeid.split("::", 1)[0]
    return nodeid


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
