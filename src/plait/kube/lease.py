"""Leader election on a `coordination.k8s.io/v1` Lease, client-go's way.

One replica holds the Lease (`holderIdentity`) and renews it every `renew_s`; the others
take it over only once `renewTime + leaseDurationSeconds` has passed. Every write is an
update with the Lease's resourceVersion, so of two replicas racing for it exactly one wins
(the other gets 409 Conflict and stays a follower). A leader that cannot renew for its
own `duration_s` stops calling itself leader before anyone else may take over, so two
replicas never act as leader for overlapping times (clocks are assumed to tick at the
same rate, as client-go assumes). Singleton work (status writes) checks `is_leader`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from typing import Any

import httpx2 as httpx

log = logging.getLogger(__name__)


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(stamp: str) -> float:
    return dt.datetime.strptime(stamp.replace("Z", "+0000"), "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()


class LeaderElector:
    def __init__(
        self,
        http: httpx.AsyncClient,
        namespace: str,
        name: str,
        identity: str,
        duration_s: int = 15,
        renew_s: float = 2.0,
        owners: list[dict[str, str]] | None = None,
    ) -> None:
        self.http = http
        self.owners = owners or []  # the Lease's ownerReferences when it is created
        self.path = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}"
        self.collection = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
        self.namespace, self.name, self.identity = namespace, name, identity
        self.duration_s, self.renew_s = duration_s, renew_s
        self._valid_until = 0.0  # monotonic time until which we may act as leader

    @property
    def is_leader(self) -> bool:
        return time.monotonic() < self._valid_until

    def _spec(self, acquire: bool, previous: dict[str, Any]) -> dict[str, Any]:
        spec = {
            **previous,
            "holderIdentity": self.identity,
            "leaseDurationSeconds": self.duration_s,
            "renewTime": _now(),
        }
        if acquire:
            spec["acquireTime"] = spec["renewTime"]
            spec["leaseTransitions"] = int(previous.get("leaseTransitions") or 0) + (
                1 if previous.get("holderIdentity") else 0
            )
        return spec

    async def try_once(self) -> bool:
        """One attempt to acquire or renew; True if this replica holds the Lease now."""
        started = time.monotonic()
        resp = await self.http.get(self.path)
        if resp.status_code == 404:
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {
                    "name": self.name,
                    "namespace": self.namespace,
                    **({"ownerReferences": self.owners} if self.owners else {}),
                },
                "spec": self._spec(True, {}),
            }
            created = await self.http.post(self.collection, json=body)
            return self._won(created.status_code == 201, started)
        resp.raise_for_status()
        lease = resp.json()
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity")
        ours = holder == self.identity
        if holder and not ours:
            renewed = spec.get("renewTime")
            duration = int(spec.get("leaseDurationSeconds") or self.duration_s)
            if renewed and _parse(renewed) + duration > time.time():
                return self._won(False, started)
        lease["spec"] = self._spec(not ours, spec)
        updated = await self.http.put(self.path, json=lease)
        return self._won(updated.status_code == 200, started)

    def _won(self, won: bool, started: float) -> bool:
        if won:
            if not self.is_leader:
                log.info("%s is the leader (Lease %s/%s)", self.identity, self.namespace, self.name)
            # counted from before the request: never longer than the API server allows
            self._valid_until = started + self.duration_s
        elif self.is_leader:
            log.warning("%s lost the Lease %s/%s", self.identity, self.namespace, self.name)
            self._valid_until = 0.0
        return won

    async def run(self) -> None:
        """Acquire and renew until cancelled (then the Lease simply expires)."""
        while True:
            try:
                await self.try_once()
            except (httpx.HTTPError, ValueError) as exc:
                log.warning("Lease %s/%s: %s", self.namespace, self.name, exc)
            await asyncio.sleep(self.renew_s)
