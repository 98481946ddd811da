"""Status like Istio's: a resource plait refuses says why in its own status.

For each mesh resource (a CRD object) with errors, the leader writes

    status:
      conditions: [{type: Accepted, status: "False", reason: Invalid, message: "PATH: TEXT"}]
      validationMessages: [{level: ERROR, type: {code: PLT0001, name: InvalidResource}}]

(the message has the field path, no file); a resource whose errors are gone loses both.
Writes go to the `status` subresource with a merge patch, only when the status differs
from what the object has (a status write changes the object's resourceVersion and so
comes back as a watch event: comparing first is what stops that loop). Only the replica
that holds the Lease writes (`is_leader`); a new leader writes whatever is still due.
Writing runs in its own task, so the source's loop never waits for the API server.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

import httpx2 as httpx

from plait.kube.reflector import ApiKind

log = logging.getLogger(__name__)

CONDITION = "Accepted"
CODE = {"code": "PLT0001", "name": "InvalidResource"}

Target = tuple[ApiKind, str, str]  # kind, namespace, name


def desired(errors: list[str]) -> dict[str, Any] | None:
    """The status an object should have (None: none of ours)."""
    if not errors:
        return None
    return {
        "conditions": [
            {
                "type": CONDITION,
                "status": "False",
                "reason": "Invalid",
                "message": "; ".join(errors),
            }
        ],
        "validationMessages": [{"level": "ERROR", "type": CODE} for _ in errors],
    }


def current(obj: dict[str, Any]) -> dict[str, Any] | None:
    """Our part of the object's status, in `desired`'s shape, for comparison."""
    status = obj.get("status") or {}
    ours = [c for c in status.get("conditions") or [] if c.get("type") == CONDITION]
    if not ours:
        return None
    c = ours[0]
    return {
        "conditions": [
            {k: c.get(k) for k in ("type", "status", "reason", "message")},
        ],
        "validationMessages": status.get("validationMessages") or [],
    }


def patch(want: dict[str, Any] | None, generation: Any) -> dict[str, Any]:
    if want is None:
        return {"status": {"conditions": None, "validationMessages": None}}
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    conditions = [
        {**c, "lastTransitionTime": now, "observedGeneration": generation}
        for c in want["conditions"]
    ]
    return {
        "status": {
            "conditions": conditions,
            "validationMessages": want["validationMessages"],
            "observedGeneration": generation,
        }
    }


class StatusWriter:
    def __init__(
        self, http: httpx.AsyncClient, is_leader: Callable[[], bool], field_manager: str = "plait"
    ) -> None:
        self.http = http
        self.field_manager = field_manager  # names the writer in the object's managedFields
        self.is_leader = is_leader
        self._due: dict[Target, tuple[dict[str, Any], list[str]]] = {}
        self._wake = asyncio.Event()
        self.writes = 0

    def update(self, objects: dict[Target, tuple[dict[str, Any], list[str]]]) -> None:
        """The objects (with their error texts) as of the source's latest view."""
        self._due = {
            t: (obj, errors)
            for t, (obj, errors) in objects.items()
            if desired(errors) != current(obj)
        }
        self._wake.set()

    async def run(self, recheck_s: float = 2.0) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(recheck_s):  # a new leader writes what is due
                    await self._wake.wait()
            self._wake.clear()
            if not self.is_leader() or not self._due:
                continue
            due, self._due = self._due, {}
            for target, (obj, errors) in due.items():
                if not await self._write(target, obj, errors):
                    self._due.setdefault(target, (obj, errors))  # retried at the recheck

    async def _write(self, target: Target, obj: dict[str, Any], errors: list[str]) -> bool:
        """One status patch; False if it should be tried again."""
        kind, ns, name = target
        generation = (obj.get("metadata") or {}).get("generation")
        url = f"{kind.path(ns)}/{name}/status"
        try:
            resp = await self.http.patch(
                url,
                json=patch(desired(errors), generation),
                headers={"Content-Type": "application/merge-patch+json"},
                params={"fieldManager": self.field_manager},
            )
        except httpx.HTTPError as exc:
            log.warning("status of %s %s/%s: %s", kind.kind, ns, name, exc)
            return False
        if resp.status_code == 404:
            return True  # deleted meanwhile
        if resp.status_code != 200:
            log.warning(
                "status of %s %s/%s: %s %s", kind.kind, ns, name, resp.status_code, resp.text[:200]
            )
            return False
        self.writes += 1
        return True
