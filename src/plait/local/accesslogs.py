"""The logs of `plait up`: where they are, and reading, merging and following them.

Files, in DIR/.plait/logs: `INSTANCE.access.log`, where the replica's Envoy appends one
JSON object per request (fields in `translate.accesslog`); `INSTANCE.log`, the app's
stdout and stderr. Both are appended to across runs of `plait up`.

`plait logs TARGET` names a Service (`NAME` or `NAME.NAMESPACE`), a Deployment (or the
`istio-ingressgateway`) or one replica; `select` resolves it with the state file.

Reading is by byte offset (`Tail`): each call returns the complete lines written since
the last one and keeps a partial last line for the next, so a line Envoy is still
writing is never parsed half-way; a file that shrank or was replaced is read again from
its start. Access records are merged across replicas by `start_time`; when following,
each poll's batch is merged (Envoy flushes its log every second, so records of different
replicas may arrive a second apart and are then printed in arrival order).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plait.errors import UnknownTargetError
from plait.local.statefile import MeshState, ProxyEntry
from plait.sources.workloads import STATE_DIR
from plait.telemetry.tail import Tail

LOG_DIR = "logs"
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def access_log_path(run_dir: Path, instance: str) -> Path:
    """Where the proxy of `instance` writes its access log; makes the directory (Envoy
    would refuse a listener whose log file it cannot open)."""
    where = run_dir / LOG_DIR
    where.mkdir(parents=True, exist_ok=True)
    return where / f"{instance}.access.log"


def app_log_path(run_dir: Path, instance: str) -> Path:
    return run_dir / LOG_DIR / f"{instance}.log"


# -- which files ---------------------------------------------------------------------


@dataclass(frozen=True)
class Replica:
    """One replica (or the gateway) and its log files; None where it has none."""

    name: str
    workload: str | None
    access_log: Path | None
    app_log: Path | None


def instance_of(proxy: ProxyEntry) -> str:
    """The instance name in a node id `KIND~INSTANCE.NAMESPACE`."""
    return proxy.name.split("~", 1)[-1].removesuffix(f".{proxy.namespace}")


def replicas(state: MeshState) -> list[Replica]:
    """Every replica `plait up` runs, sidecar or not, and the gateway."""
    run_dir = Path(state.root) / STATE_DIR
    found: dict[str, Replica] = {}
    for p in state.proxies:
        name = instance_of(p)
        found[name] = Replica(
            name,
            p.workload,
            Path(p.accessLog) if p.accessLog else None,
            Path(p.appLog) if p.appLog else None,
        )
    for service in state.services:
        for name in service.replicas:  # replicas without a sidecar are only listed here
            found.setdefault(name, Replica(name, None, None, app_log_path(run_dir, name)))
    return sorted(found.values(), key=lambda r: r.name)


def _of_workload(r: Replica, workload: str) -> bool:
    if r.workload is not None:
        return r.workload == workload
    return re.fullmatch(re.escape(workload) + r"-\d+", r.name) is not None


def select(state: MeshState, target: str) -> list[Replica]:
    """The replicas `target` names: a Service's, else a workload's, else one replica.
    Raises UnknownTargetError, listing what there is, when it names none of those."""
    everyone = replicas(state)
    by_name = {r.name: r for r in everyone}
    services = [s for s in state.services if target in (s.name, f"{s.name}.{s.namespace}")]
    if services:
        names = sorted({n for s in services for n in s.replicas})
        return [by_name[n] for n in names if n in by_name]
    of_workload = [r for r in everyone if _of_workload(r, target)]
    if of_workload:
        return of_workload
    if target in by_name:
        return [by_name[target]]
    known_services = ", ".join(sorted({s.name for s in state.services})) or "none"
    workloads = ", ".join(sorted({r.workload for r in everyone if r.workload})) or "none"
    raise UnknownTargetError(
        f"{target!r} is no Service, workload or replica of the mesh in {state.root} "
        f"(services: {known_services}; workloads: {workloads})"
    )


# -- reading -------------------------------------------------------------------------


@dataclass(frozen=True)
class AccessRecord:
    """One request as one proxy logged it."""

    time: dt.datetime
    replica: str
    fields: dict[str, Any]

    @property
    def trace_id(self) -> str | None:
        return trace_id_of(self.fields)

    def to_json(self) -> dict[str, Any]:
        """The logged object with `replica` added and `trace_id` filled (`trace_id_of`)."""
        return {**self.fields, "trace_id": self.trace_id, "replica": self.replica}


def trace_id_of(fields: dict[str, Any]) -> str | None:
    """The trace id: Envoy's own (`%TRACE_ID%`, set when a tracer runs), else the one in
    the W3C `traceparent` header (`VERSION-TRACEID-SPANID-FLAGS`), else B3's."""
    own = fields.get("trace_id")
    if isinstance(own, str) and own:
        return own
    parent = fields.get("traceparent")
    if isinstance(parent, str):
        parts = parent.strip().split("-")
        if len(parts) >= 4 and len(parts[1]) == 32:
            return parts[1].lower()
    b3 = fields.get("x_b3_traceid")
    return b3.lower() if isinstance(b3, str) and b3 else None


def parse_time(value: object) -> dt.datetime:
    """`start_time` as Envoy writes it (ISO 8601, UTC); the epoch if missing or bad."""
    if isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value)
        except ValueError:
            return EPOCH
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
    return EPOCH


def parse_line(replica: str, line: str) -> AccessRecord | None:
    """One access log line; None if it is not a JSON object."""
    try:
        fields = json.loads(line)
    except ValueError:
        return None
    if not isinstance(fields, dict):
        return None
    return AccessRecord(parse_time(fields.get("start_time")), replica, fields)


def _records(replica: str, lines: Sequence[str], since: dt.datetime | None) -> list[AccessRecord]:
    parsed = (parse_line(replica, line) for line in lines)
    return [r for r in parsed if r is not None and (since is None or r.time >= since)]


def read_access(files: Sequence[Replica], since: dt.datetime | None = None) -> list[AccessRecord]:
    """Every access record of `files` (at or after `since`), merged by start time."""
    out: list[AccessRecord] = []
    for r in files:
        if r.access_log is not None:
            out += _records(r.name, Tail(r.access_log).lines(), since)
    return sorted(out, key=lambda rec: rec.time)


@dataclass(frozen=True)
class FollowOptions:
    since: dt.datetime | None = None
    poll_s: float = 0.25
    refresh_s: float = 2.0  # how often `resolve` is asked again (replicas come and go)


Resolve = Callable[[], Sequence[Replica]]


def follow_access(resolve: Resolve, opts: FollowOptions) -> Iterator[list[AccessRecord]]:
    """Batches of records: first everything already logged (at or after `opts.since`),
    then, forever, what was appended since the last batch. A replica that appears later
    is read from the start of its file, keeping records from when following began."""
    started = dt.datetime.now(dt.UTC)
    tails: dict[Path, tuple[str, Tail, dt.datetime | None]] = {}

    def track(first: bool) -> None:
        for r in resolve():
            if r.access_log is not None and r.access_log not in tails:
                cutoff = opts.since if first else started
                tails[r.access_log] = (r.name, Tail(r.access_log), cutoff)

    track(first=True)
    refreshed = time.monotonic()
    while True:
        batch: list[AccessRecord] = []
        for name, tail, cutoff in tails.values():
            batch += _records(name, tail.lines(), cutoff)
        yield sorted(batch, key=lambda rec: rec.time)
        time.sleep(opts.poll_s)
        if time.monotonic() - refreshed >= opts.refresh_s:
            track(first=False)
            refreshed = time.monotonic()


def follow_app(
    resolve: Resolve, opts: FollowOptions, *, follow: bool = True
) -> Iterator[list[tuple[str, str]]]:
    """Batches of (replica, line) of the apps' own logs: everything so far, then (when
    `follow`) what was appended. Replicas that appear later are read from then on."""
    tails: dict[Path, tuple[str, Tail]] = {}

    def track(first: bool) -> None:
        for r in resolve():
            if r.app_log is not None and r.app_log not in tails:
                tail = Tail(r.app_log)
                if not first:
                    tail.skip_to_end()
                tails[r.app_log] = (r.name, tail)

    track(first=True)
    refreshed = time.monotonic()
    while True:
        yield [(name, line) for name, tail in tails.values() for line in tail.lines()]
        if not follow:
            return
        time.sleep(opts.poll_s)
        if time.monotonic() - refreshed >= opts.refresh_s:
            track(first=False)
            refreshed = time.monotonic()


def since_cutoff(seconds: float | None, now: dt.datetime | None = None) -> dt.datetime | None:
    """The start time of the oldest record `--since` keeps."""
    if seconds is None:
        return None
    return (now or dt.datetime.now(dt.UTC)) - dt.timedelta(seconds=seconds)


__all__ = [
    "AccessRecord",
    "FollowOptions",
    "Replica",
    "Tail",
    "access_log_path",
    "app_log_path",
    "follow_access",
    "follow_app",
    "parse_line",
    "read_access",
    "replicas",
    "select",
    "since_cutoff",
    "trace_id_of",
]
