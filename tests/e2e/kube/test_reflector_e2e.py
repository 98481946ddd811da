"""The reflector (plait.kube.reflector) against the real API server: every change is seen
exactly once across watch reconnects, and a watch whose resourceVersion etcd compacted
away (410 Gone, on the cluster without the watch cache) re-lists and delivers exactly
the changes it missed as a diff."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator

import httpx2 as httpx
import pytest

from kubecluster import Cluster
from plait.kube import config as kubeconfig
from plait.kube.reflector import ApiKind, Change, Delta, Reflector

CONFIGMAPS = ApiKind("ConfigMap", "", "v1", "configmaps")


def configmap(namespace: str, name: str, value: str) -> str:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace},
            "data": {"v": value},
        }
    )


@contextlib.asynccontextmanager
async def client(cluster: Cluster) -> AsyncIterator[httpx.AsyncClient]:
    http = kubeconfig.http_client(kubeconfig.load(cluster.kubeconfig))
    try:
        yield http
    finally:
        await http.aclose()


async def wait_for(what: str, ok: object, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not ok():  # type: ignore[operator]
            await asyncio.sleep(0.02)


def seen(deltas: list[Delta]) -> list[tuple[str, str, str]]:
    """The test's own changes (the namespace's kube-root-ca.crt comes whenever it comes)."""
    return [
        (d.change.value, d.key[1], d.obj.get("data", {}).get("v", ""))
        for d in deltas
        if d.key[1] != "kube-root-ca.crt"
    ]


async def kubectl(cluster: Cluster, *args: str, input: str | None = None) -> str:
    """The cluster's kubectl as an asyncio subprocess (no executor thread to outlive a test)."""
    proc = await asyncio.create_subprocess_exec(
        str(cluster.bin / "kubectl"), "--kubeconfig", str(cluster.kubeconfig), *args,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(60):
        out, err = await proc.communicate(input.encode() if input else None)
    assert proc.returncode == 0, f"kubectl {' '.join(args)}: {err.decode()}"
    return out.decode()


async def test_each_change_arrives_once_across_watch_reconnects(
    kube: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="plait.kube.reflector")
    ns = f"refl-{uuid.uuid4().hex[:6]}"
    await kubectl(kube, "create", "namespace", ns)
    deltas: list[Delta] = []
    async with client(kube) as http:
        reflector = Reflector(http, CONFIGMAPS, deltas.extend, namespace=ns, watch_timeout=(1, 1))
        task = asyncio.create_task(reflector.run())
        try:
            await asyncio.wait_for(reflector.synced.wait(), 10)
            await wait_for("kube-root-ca.crt", lambda: (ns, "kube-root-ca.crt") in reflector.items)
            deltas.clear()

            async def reconnected() -> None:
                """The server ends each watch after 1 s: wait until the next one began."""
                before = reflector.watches
                await wait_for("a new watch", lambda: reflector.watches > before)

            await kubectl(kube, "apply", "-f", "-", input=configmap(ns, "a", "1"))
            await wait_for("a=1", lambda: (ns, "a") in reflector.items)
            await reconnected()
            await kubectl(kube, "apply", "-f", "-", input=configmap(ns, "a", "2"))
            await kubectl(kube, "apply", "-f", "-", input=configmap(ns, "b", "1"))
            await wait_for("b=1", lambda: (ns, "b") in reflector.items)
            await reconnected()
            await kubectl(kube, "delete", "configmap", "a", "-n", ns)
            await wait_for("the deletion", lambda: (ns, "a") not in reflector.items)
            await reconnected()  # one more reconnect: nothing may be replayed
            await reconnected()
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    why = caplog.text  # the reflector logs each re-list and failed watch
    assert seen(deltas) == [
        ("ADDED", "a", "1"),
        ("MODIFIED", "a", "2"),
        ("ADDED", "b", "1"),
        ("DELETED", "a", "2"),
    ], why
    assert reflector.lists == 1, why
    assert set(reflector.items) == {(ns, "b"), (ns, "kube-root-ca.crt")}


async def test_a_410_relists_and_delivers_exactly_what_was_missed(uncached: Cluster) -> None:
    ns = f"gone-{uuid.uuid4().hex[:6]}"
    await kubectl(uncached, "create", "namespace", ns)
    for name in ("keep", "edit", "drop"):
        await kubectl(uncached, "apply", "-f", "-", input=configmap(ns, name, "1"))
    deltas: list[Delta] = []
    async with client(uncached) as http:
        reflector = Reflector(http, CONFIGMAPS, deltas.extend, namespace=ns)
        task = asyncio.create_task(reflector.run())
        await asyncio.wait_for(reflector.synced.wait(), 10)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        before = reflector.version
        deltas.clear()

        # while nothing watches: changes, a compaction, one more write behind it
        await kubectl(uncached, "apply", "-f", "-", input=configmap(ns, "edit", "2"))
        await kubectl(uncached, "delete", "configmap", "drop", "-n", ns)
        await kubectl(uncached, "apply", "-f", "-", input=configmap(ns, "new", "1"))
        uncached.compact()  # one local HTTP request to etcd
        await kubectl(uncached, "apply", "-f", "-", input=configmap(ns, "late", "1"))

        task = asyncio.create_task(reflector.run())  # watches from `before`: 410
        try:
            await wait_for("the re-list", lambda: reflector.lists == 2)
            await kubectl(uncached, "apply", "-f", "-", input=configmap(ns, "after", "1"))
            await wait_for("the next event", lambda: (ns, "after") in reflector.items)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    assert int(reflector.version) > int(before)
    ours = seen(deltas)
    relisted = sorted(ours[:-1])
    assert relisted == sorted(
        [
            ("MODIFIED", "edit", "2"),
            ("DELETED", "drop", "1"),
            ("ADDED", "new", "1"),
            ("ADDED", "late", "1"),
        ]
    )
    assert ours[-1:] == [("ADDED", "after", "1")]
    assert all(d.change in (Change.ADDED, Change.MODIFIED, Change.DELETED) for d in deltas)


@pytest.mark.parametrize("page_size", [2])
async def test_a_list_in_pages_gets_every_object(kube: Cluster, page_size: int) -> None:
    ns = f"page-{uuid.uuid4().hex[:6]}"
    await kubectl(kube, "create", "namespace", ns)
    for i in range(5):
        await kubectl(kube, "apply", "-f", "-", input=configmap(ns, f"c{i}", "1"))
    async with client(kube) as http:
        reflector = Reflector(http, CONFIGMAPS, lambda _: None, namespace=ns, page_size=page_size)
        task = asyncio.create_task(reflector.run())
        try:
            await asyncio.wait_for(reflector.synced.wait(), 10)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    assert {k[1] for k in reflector.items} == {f"c{i}" for i in range(5)} | {"kube-root-ca.crt"}
