"""The reflector's re-list reconciliation: a diff by resourceVersion (the e2e tests run it
against the real API server)."""

from __future__ import annotations

from plait.kube.reflector import ApiKind, Change, diff


def obj(name: str, version: str) -> dict[str, object]:
    return {"metadata": {"namespace": "ns", "name": name, "resourceVersion": version}}


def test_diff_reports_only_what_changed() -> None:
    old = {("ns", "a"): obj("a", "1"), ("ns", "b"): obj("b", "2"), ("ns", "c"): obj("c", "3")}
    new = {("ns", "a"): obj("a", "1"), ("ns", "b"): obj("b", "5"), ("ns", "d"): obj("d", "6")}
    got = {(d.change, d.key[1]) for d in diff(old, new)}
    assert got == {(Change.DELETED, "c"), (Change.MODIFIED, "b"), (Change.ADDED, "d")}


def test_paths() -> None:
    pods = ApiKind("Pod", "", "v1", "pods")
    vs = ApiKind("VirtualService", "networking.istio.io", "v1", "virtualservices")
    assert pods.path() == "/api/v1/pods"
    assert pods.path("web") == "/api/v1/namespaces/web/pods"
    assert vs.path() == "/apis/networking.istio.io/v1/virtualservices"
    assert vs.api_version == "networking.istio.io/v1"
