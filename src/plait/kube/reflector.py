"""A reflector: one kind of Kubernetes object mirrored into memory, client-go's way.

It lists (in pages), then watches from the list's resourceVersion with
`allowWatchBookmarks`, so a quiet watch still advances its version. When the watch ends
(server timeout, a dropped connection) it watches again from the last version it saw;
when that version is gone (410 Gone: compacted, or outside the watch cache's window) it
lists again and reconciles by diff, so a consumer sees exactly the changes it missed —
no object twice, none lost. Errors back off exponentially (reset after progress) and are
reported through `on_error` (`None` once the reflector is in sync again).

Objects are the API server's JSON as dicts (CRDs need no generated models). The
handler `on_change` is called on the event loop after each change to `items`; it must not
block (the source only marks itself dirty), so the watch is never held up by consumers.

lightkube 1.0.1's `watch()` has no bookmark option and reconnects for ever on its own,
hiding 410s from the caller; so only its configuration and HTTP client (authentication,
TLS, kubeconfig handling) are used here, and the protocol is spoken directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import httpx2 as httpx

from plait.aio import BACKOFF, Backoff
from plait.errors import KubeApiError

log = logging.getLogger(__name__)

Obj = dict[str, Any]
Key = tuple[str, str]  # (namespace, name); namespace "" for cluster-scoped objects


@dataclass(frozen=True)
class ApiKind:
    """A resource collection of the API: `/api/v1/pods`, `/apis/G/V/PLURAL`."""

    kind: str
    group: str
    version: str
    plural: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str | None = None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if namespace is not None and self.namespaced:
            return f"{base}/namespaces/{namespace}/{self.plural}"
        return f"{base}/{self.plural}"


class Change(StrEnum):
    ADDED = "ADDED"
    MODIFIED = "MODIFIED"
    DELETED = "DELETED"


@dataclass(frozen=True)
class Delta:
    change: Change
    key: Key
    obj: Obj


def key_of(obj: Obj) -> Key:
    meta = obj.get("metadata") or {}
    return (str(meta.get("namespace") or ""), str(meta.get("name") or ""))


def version_of(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


class NotServed(Exception):  # noqa: N818 - a protocol outcome, retried
    """The API server does not serve this kind (404: say, its CRD is not installed)."""


class Gone(Exception):  # noqa: N818 - a protocol outcome, handled by re-listing
    """The resourceVersion asked for is no longer available (HTTP or watch event 410)."""


def diff(old: dict[Key, Obj], new: dict[Key, Obj]) -> list[Delta]:
    """The changes that turn `old` into `new` (by resourceVersion; unchanged: nothing)."""
    deltas = [Delta(Change.DELETED, k, o) for k, o in old.items() if k not in new]
    for k, o in new.items():
        before = old.get(k)
        if before is None:
            deltas.append(Delta(Change.ADDED, k, o))
        elif version_of(before) != version_of(o):
            deltas.append(Delta(Change.MODIFIED, k, o))
    return deltas


class Reflector:
    """Mirrors one `ApiKind` (optionally one namespace, label or field selector)."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        kind: ApiKind,
        on_change: Callable[[list[Delta]], None],
        *,
        namespace: str | None = None,
        field_selector: str | None = None,
        page_size: int = 500,
        watch_timeout: tuple[int, int] = (300, 600),
        backoff: Backoff = BACKOFF,
        on_error: Callable[[str | None], None] = lambda _: None,
    ) -> None:
        self.http = http
        self.kind = kind
        self.namespace = namespace
        self.field_selector = field_selector
        self.page_size = page_size
        self.watch_timeout = watch_timeout
        self.backoff = backoff
        self.on_change = on_change
        self.on_error = on_error
        self.items: dict[Key, Obj] = {}
        self.version = ""  # the last resourceVersion seen (list, event or bookmark)
        self.lists = 0  # how many full lists were made (the first one, then each 410)
        self.watches = 0  # how many watch requests the API server accepted
        self.synced = asyncio.Event()  # set once the first list is in `items`

    def _params(self, **extra: str) -> dict[str, str]:
        params = dict(extra)
        if self.field_selector:
            params["fieldSelector"] = self.field_selector
        return params

    async def run(self) -> None:
        """Reflect until cancelled; never returns, never raises but CancelledError."""
        delay: float | None = None
        need_list = True
        while True:
            try:
                if need_list:
                    await self._list()
                    need_list = False
                    delay = None
                    self.on_error(None)
                progressed = await self._watch()
                if progressed:
                    delay = None
            except NotServed:
                delay = self.backoff.next(delay, 0.0)
                text = f"{self.kind.kind}: {self.kind.api_version} is not served (CRD not installed?); retrying in {delay:.1f} s"
                log.warning("%s", text)
                self.on_error(text)
                if not self.synced.is_set():  # nothing of this kind exists: in sync with that
                    self.synced.set()
                    self.on_change([])
                await asyncio.sleep(delay)
            except Gone:
                log.info(
                    "%s: resourceVersion %s is gone; listing again", self.kind.kind, self.version
                )
                need_list = True
                continue
            # OSError: a TLS record error reading a watch the server ends (ssl.SSLError)
            # can surface unwrapped by the HTTP client; like any transport error: again
            except (httpx.HTTPError, KubeApiError, ValueError, OSError) as exc:
                delay = self.backoff.next(delay, 0.0)
                text = f"{self.kind.kind}: {type(exc).__name__}: {exc}; retrying in {delay:.1f} s"
                log.warning("%s", text)
                self.on_error(text)
                await asyncio.sleep(delay)

    async def _get(self, params: dict[str, str]) -> Obj:
        resp = await self.http.get(self.kind.path(self.namespace), params=params)
        if resp.status_code == 410:
            raise Gone
        if resp.status_code == 404:
            raise NotServed
        if resp.status_code != 200:
            raise KubeApiError(
                f"GET {self.kind.path(self.namespace)}: {resp.status_code} {_message(resp.text)}"
            )
        body: Obj = resp.json()
        return body

    async def _list(self) -> None:
        fresh: dict[Key, Obj] = {}
        params = self._params(limit=str(self.page_size))
        while True:
            page = await self._get(params)
            for obj in page.get("items") or []:
                obj.setdefault("apiVersion", self.kind.api_version)
                obj.setdefault("kind", self.kind.kind)
                fresh[key_of(obj)] = obj
            meta = page.get("metadata") or {}
            token = meta.get("continue")
            if not token:
                version = str(meta.get("resourceVersion") or "")
                break
            params = self._params(limit=str(self.page_size), **{"continue": str(token)})
        deltas = diff(self.items, fresh)
        self.items = fresh
        self.version = version
        self.lists += 1
        first = not self.synced.is_set()
        self.synced.set()
        if deltas or first:
            self.on_change(deltas)

    async def _watch(self) -> bool:
        """One watch request from `version`; True if it delivered anything."""
        timeout = random.randint(*self.watch_timeout)  # noqa: S311 - spreads reconnects only
        params = self._params(
            watch="1",
            resourceVersion=self.version,
            allowWatchBookmarks="true",
            timeoutSeconds=str(timeout),
        )
        progressed = False
        request_timeout = httpx.Timeout(10.0, read=timeout + 30.0)
        async with self.http.stream(
            "GET", self.kind.path(self.namespace), params=params, timeout=request_timeout
        ) as resp:
            if resp.status_code == 410:
                raise Gone
            if resp.status_code != 200:
                text = (await resp.aread()).decode(errors="replace")
                raise KubeApiError(
                    f"watch {self.kind.path(self.namespace)}: {resp.status_code} {_message(text)}"
                )
            self.on_error(None)  # watching again: in sync
            self.watches += 1
            # closed here, not left to the loop's shutdown, when the task is cancelled
            lines = resp.aiter_lines()
            async with contextlib.aclosing(lines):  # type: ignore[type-var]
                async for line in lines:
                    if not line.strip():
                        continue
                    self._apply(json.loads(line))
                    progressed = True
        return progressed

    def _apply(self, event: Obj) -> None:
        kind = event.get("type")
        obj: Obj = event.get("object") or {}
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise Gone
            raise KubeApiError(f"watch {self.kind.kind}: {obj.get('code')} {obj.get('message')}")
        version = version_of(obj)
        if kind == "BOOKMARK":
            self.version = version or self.version
            return
        if kind not in ("ADDED", "MODIFIED", "DELETED"):
            raise KubeApiError(f"watch {self.kind.kind}: unknown event type {kind!r}")
        obj.setdefault("apiVersion", self.kind.api_version)
        obj.setdefault("kind", self.kind.kind)
        key = key_of(obj)
        self.version = version or self.version
        before = self.items.get(key)
        if kind == "DELETED":
            if before is None:
                return  # already gone (a re-list saw the deletion first)
            del self.items[key]
            self.on_change([Delta(Change.DELETED, key, obj)])
            return
        if before is not None and version_of(before) == version:
            return  # the list already had this version
        self.items[key] = obj
        change = Change.ADDED if before is None else Change.MODIFIED
        self.on_change([Delta(change, key, obj)])


def _message(text: str) -> str:
    try:
        return str(json.loads(text).get("message") or text)
    except (ValueError, AttributeError):
        return text[:300]
