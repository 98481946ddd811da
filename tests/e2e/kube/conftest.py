"""A real Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager,
kube-scheduler: tests/kubecluster.py) for the whole session, started on first use; the
binaries are built from the Kubernetes Go modules when the cache misses (a cold build
takes long: see README). A failed test prints the components' log tails."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubecluster import Cluster, up
from kubenode import NodeAgent, running_node


@pytest.fixture(scope="session")
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    began = time.monotonic()
    cluster = up(tmp_path_factory.mktemp("kube"))
    print(f"\nkube cluster ready in {time.monotonic() - began:.1f} s at {cluster.server}")
    try:
        yield cluster
    finally:
        cluster.stop()
        assert not cluster.running(), "a cluster process outlived stop()"


@pytest.fixture(scope="session")
def uncached(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A second cluster without the watch cache (`--watch-cache=false`): a watch from a
    compacted resourceVersion then gets 410 Gone deterministically (docs/kubernetes-testing.md)."""
    cluster = up(tmp_path_factory.mktemp("uncached"), apiserver_args=("--watch-cache=false",))
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def node(kube: Cluster, tmp_path: Path) -> Iterator[NodeAgent]:
    """The test node agent (tests/kubenode.py) for one test; a module may define its own."""
    (tmp_path / "node").mkdir()
    with running_node(kube.kubeconfig, tmp_path / "node") as agent:
        yield agent


@pytest.fixture(autouse=True)
def _no_webhook_left(request: pytest.FixtureRequest) -> Iterator[None]:
    """Admission webhooks a test registered are gone after it, whatever happened: one
    left behind with `failurePolicy: Fail` and no server would refuse every later test's
    pods in labelled namespaces (the test's own `finally` may not get that far)."""
    if "kube" not in request.fixturenames:
        yield
        return
    kube: Cluster = request.getfixturevalue("kube")

    def names() -> set[str]:
        kinds = "mutatingwebhookconfigurations,validatingwebhookconfigurations"
        return set(kube.kubectl("get", kinds, "-o", "name").split())

    before = names()
    yield
    for left in sorted(names() - before):
        kube.kubectl("delete", left, "--ignore-not-found")


@pytest.fixture(autouse=True)
def _kube_logs(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed and "kube" in request.fixturenames:
        print(request.getfixturevalue("kube").diagnostics())
