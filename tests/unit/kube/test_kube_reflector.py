"""The reflector's re-list reconciliation: a diff by resourceVersion (the e2e tests run it
against the real API server)."""

from __future__ import annotations

import asyncio
import contextlib
import ssl

import httpx2 as httpx

from plait.aio import Backoff
from plait.kube.reflector import ApiKind, Change, Reflector, diff


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


async def test_a_tls_error_reading_a_watch_is_retried_not_fatal() -> None:
    """A TLS record error on a watch the server ends can reach the reflector unwrapped
    (ssl.SSLError, an OSError): it watches again from where it was, as for any transport
    error, and never ends (seen on the real API server under load)."""
    watches: list[str] = []
    errors: list[str | None] = []

    async def answer(request: httpx.Request) -> httpx.Response:
        if request.url.params.get("watch") != "1":
            return httpx.Response(200, json={"metadata": {"resourceVersion": "5"}, "items": []})
        watches.append(request.url.params["resourceVersion"])
        if len(watches) == 1:
            raise ssl.SSLError(1, "[SSL] record layer failure")
        await asyncio.sleep(0.05)  # the watch lasts a while, then ends with no event
        return httpx.Response(200, content=b"")

    http = httpx.AsyncClient(transport=httpx.MockTransport(answer), base_url="https://k8s")
    kind = ApiKind("ConfigMap", "", "v1", "configmaps")
    reflector = Reflector(
        http, kind, lambda _: None, backoff=Backoff(first=0.01), on_error=errors.append
    )
    task = asyncio.create_task(reflector.run())
    try:
        async with asyncio.timeout(5):
            while len(watches) < 3:
                await asyncio.sleep(0.01)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await http.aclose()
    assert watches[:3] == ["5", "5", "5"] and reflector.lists == 1
    assert any(e and "SSLError" in e for e in errors)
