"""Pods in network namespaces for the capture e2e tests (root only).

`pods`: one pod network per module with pods `app` (an echo app on 8080 and an Envoy as
the proxy UID), `server` (echo on 9000 and 9001) and `other` (echo on 9000). Teardown
stops every process by its id, removes the network and then checks that the host's
namespaces, links, routes, iptables and /etc/netns are exactly as before. A failing test
prints the Envoy's log, access log and config dump.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from capturekit import Pods, Procs, host_snapshot, start_echo, start_envoy

from plait.podnet import PodNetwork


@pytest.fixture(scope="module")
def pods(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pods]:
    before = host_snapshot()
    state = tmp_path_factory.mktemp("podnet") / "podnet.json"
    workdir = Path(tempfile.mkdtemp(prefix="plait-capture-"))
    workdir.chmod(0o755)
    procs = Procs()
    net = PodNetwork.create(state)
    try:
        app, server, other = net.add_pod("app"), net.add_pod("server"), net.add_pod("other")
        start_echo(procs, app, workdir, 8080)
        start_echo(procs, server, workdir, 9000, 9001)
        start_echo(procs, other, workdir, 9000)
        envoy = start_envoy(procs, app, workdir / "envoy")
        yield Pods(net, app, server, other, envoy)
    finally:
        procs.stop()
        net.close()
        shutil.rmtree(workdir, ignore_errors=True)
    assert host_snapshot() == before, "the pod network left something on the host"


@pytest.fixture(autouse=True)
def _envoy_diagnostics(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed and "pods" in request.fixturenames:
        print(request.getfixturevalue("pods").envoy.diagnostics())
