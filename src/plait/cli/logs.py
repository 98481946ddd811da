"""`plait logs TARGET DIR`: the access logs (or the apps' own output) of a target's replicas.

Output is written line by line and flushed, so `plait logs -f ... | grep` and a reader of
a pipe see each request as soon as its proxy has flushed it (about a second).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from plait.cli import exitcodes
from plait.errors import MeshStateError, UnknownTargetError
from plait.local.accesslogs import (
    AccessRecord,
    FollowOptions,
    Replica,
    follow_access,
    follow_app,
    read_access,
    select,
    since_cutoff,
)
from plait.local.statefile import read_state

Write = Callable[[str], None]


@dataclass(frozen=True)
class LogsOptions:
    target: str
    root: Path
    follow: bool = False
    since_s: float | None = None
    json: bool = False
    app: bool = False  # the apps' stdout/stderr instead of the access logs


def _peer(fields: dict[str, object]) -> object:
    """The other end's SPIFFE ID: the caller on inbound, the callee otherwise."""
    if fields.get("direction") == "inbound":
        return fields.get("downstream_peer_uri_san")
    return fields.get("upstream_peer_uri_san")


def _text(value: object) -> str:
    return "-" if value is None or value == "" else str(value)


def format_record(rec: AccessRecord) -> str:
    """One readable line: time, replica, direction, request, code, flags, duration,
    peer identity, trace id."""
    f = rec.fields
    duration = f.get("duration")
    return " ".join(
        [
            _text(f.get("start_time")),
            rec.replica,
            _text(f.get("direction")).ljust(8),
            _text(f.get("method")),
            _text(f.get("path")),
            _text(f.get("response_code")),
            _text(f.get("response_flags")),
            f"{duration}ms" if duration is not None else "-",
            f"peer={_text(_peer(f))}",
            f"trace={_text(rec.trace_id)}",
        ]
    )


def _write_records(records: Iterable[AccessRecord], as_json: bool, write: Write) -> None:
    for rec in records:
        write(json.dumps(rec.to_json()) if as_json else format_record(rec))


def _write_app_lines(lines: Iterable[tuple[str, str]], as_json: bool, write: Write) -> None:
    for replica, line in lines:
        write(json.dumps({"replica": replica, "line": line}) if as_json else f"[{replica}] {line}")


def _resolver(opts: LogsOptions, first: Sequence[Replica]) -> Callable[[], Sequence[Replica]]:
    """The target's replicas now; the last known ones while the state cannot be read."""
    last = list(first)

    def resolve() -> Sequence[Replica]:
        nonlocal last
        with contextlib.suppress(MeshStateError, UnknownTargetError):
            last = select(read_state(opts.root, require_alive=False), opts.target)
        return last

    return resolve


def show_logs(opts: LogsOptions, write: Write, error: Write) -> int:
    """Print the logs; with `follow`, until interrupted. Returns the exit code."""
    try:
        found = select(read_state(opts.root, require_alive=False), opts.target)
    except MeshStateError as exc:
        error(str(exc))
        return exitcodes.NOT_RUNNING
    except UnknownTargetError as exc:
        error(str(exc))
        return exitcodes.USAGE
    resolve = _resolver(opts, found)
    follow = FollowOptions(since=since_cutoff(opts.since_s))
    try:
        if opts.app:
            for lines in follow_app(resolve, follow, follow=opts.follow):
                _write_app_lines(lines, opts.json, write)
        elif not opts.follow:
            _write_records(read_access(found, follow.since), opts.json, write)
        else:
            for batch in follow_access(resolve, follow):
                _write_records(batch, opts.json, write)
    except KeyboardInterrupt:
        pass
    except BrokenPipeError:  # `plait logs ... | head`: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return exitcodes.OK


def stdout_line(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()
