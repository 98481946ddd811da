"""`plait logs` files: which replicas a target names, and reading, merging, following."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from plait.errors import UnknownTargetError
from plait.local.accesslogs import (
    FollowOptions,
    Replica,
    Tail,
    access_log_path,
    app_log_path,
    follow_access,
    follow_app,
    parse_line,
    read_access,
    replicas,
    select,
    since_cutoff,
    trace_id_of,
)
from plait.local.statefile import MeshState, ProxyEntry, ServiceEntry

TRACE = "0af7651916cd43dd8448eb211c80319c"


def proxy(
    root: Path, instance: str, workload: str, kind: str = "sidecar", ns: str = "default"
) -> ProxyEntry:
    logs = root / ".plait" / "logs"
    return ProxyEntry(
        name=f"{kind}~{instance}.{ns}",
        kind=kind,
        workload=workload,
        namespace=ns,
        serviceAccount=workload,
        labels={},
        admin="127.0.0.1:1",
        appLog=str(logs / f"{instance}.log") if kind == "sidecar" else None,
        accessLog=str(logs / f"{instance}.access.log"),
    )


def state(root: Path) -> MeshState:
    """echo (echo-v1 ×2 with sidecars, echo-v2 ×1), a plain app without a sidecar, a gateway."""
    return MeshState(
        pid=1,
        phase="ready",
        root=str(root),
        xds="127.0.0.1:2",
        status_url="http://127.0.0.1:3/status",
        proxies=[
            proxy(root, "istio-ingressgateway", "istio-ingressgateway", "gateway", "istio-system"),
            proxy(root, "echo-v1-0", "echo-v1"),
            proxy(root, "echo-v1-1", "echo-v1"),
            proxy(root, "echo-v2-0", "echo-v2"),
        ],
        services=[
            ServiceEntry("echo", "default", [], ["echo-v1-0", "echo-v1-1", "echo-v2-0"], []),
            ServiceEntry("legacy", "default", [], ["plain-0"], []),
        ],
    )


def line(at: str, **fields: Any) -> str:
    return json.dumps({"start_time": at, "method": "GET", "path": "/", **fields})


def append(path: Path, *lines: str, end: str = "\n") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        f.write("\n".join(lines) + end)


# -- where ---------------------------------------------------------------------------


def test_log_paths_sit_next_to_each_other_and_the_directory_is_made(tmp_path: Path) -> None:
    path = access_log_path(tmp_path / ".plait", "echo-v1-0")
    assert path == tmp_path / ".plait" / "logs" / "echo-v1-0.access.log"
    assert path.parent.is_dir()
    assert app_log_path(tmp_path / ".plait", "echo-v1-0") == path.parent / "echo-v1-0.log"


def test_replicas_include_the_gateway_and_apps_without_a_sidecar(tmp_path: Path) -> None:
    found = {r.name: r for r in replicas(state(tmp_path))}
    assert set(found) == {"istio-ingressgateway", "echo-v1-0", "echo-v1-1", "echo-v2-0", "plain-0"}
    assert found["plain-0"].access_log is None
    assert found["plain-0"].app_log == tmp_path / ".plait" / "logs" / "plain-0.log"
    assert found["istio-ingressgateway"].app_log is None
    assert found["echo-v1-0"].access_log == tmp_path / ".plait/logs/echo-v1-0.access.log"


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("echo", ["echo-v1-0", "echo-v1-1", "echo-v2-0"]),
        ("echo.default", ["echo-v1-0", "echo-v1-1", "echo-v2-0"]),
        ("echo-v1", ["echo-v1-0", "echo-v1-1"]),
        ("echo-v1-1", ["echo-v1-1"]),
        ("istio-ingressgateway", ["istio-ingressgateway"]),
        ("plain", ["plain-0"]),  # a workload without a sidecar, known by its replicas' names
        ("legacy", ["plain-0"]),
    ],
)
def test_select_a_service_a_workload_or_a_replica(
    tmp_path: Path, target: str, expected: list[str]
) -> None:
    assert [r.name for r in select(state(tmp_path), target)] == expected


def test_an_unknown_target_says_what_there_is(tmp_path: Path) -> None:
    with pytest.raises(UnknownTargetError, match=r"'nope'.*services: echo, legacy.*echo-v1"):
        select(state(tmp_path), "nope")


# -- reading -------------------------------------------------------------------------


def test_tail_returns_complete_lines_only_and_restarts_after_truncation(tmp_path: Path) -> None:
    path = tmp_path / "f.log"
    tail = Tail(path)
    assert tail.lines() == []  # not there yet
    append(path, "one", "tw", end="")
    assert tail.lines() == ["one"]  # "tw" is still being written
    append(path, "o", "three")
    assert tail.lines() == ["two", "three"]
    assert tail.lines() == []
    path.write_text("new\n")  # truncated (or rotated)
    assert tail.lines() == ["new"]
    fresh = tmp_path / "g.log"
    fresh.write_text("replaced, and longer than before\n")
    fresh.replace(path)  # a new file (inode) in its place: read from its start
    assert tail.lines() == ["replaced, and longer than before"]


def test_trace_id_from_envoy_else_traceparent_else_b3() -> None:
    assert (
        trace_id_of({"trace_id": "abc", "traceparent": f"00-{TRACE}-b7ad6b7169203331-01"}) == "abc"
    )
    assert (
        trace_id_of({"trace_id": None, "traceparent": f"00-{TRACE}-b7ad6b7169203331-01"}) == TRACE
    )
    assert trace_id_of({"traceparent": "garbage", "x_b3_traceid": "80F198EE56343BA8"}) == (
        "80f198ee56343ba8"
    )
    assert trace_id_of({"traceparent": None, "x_b3_traceid": None}) is None


def test_parse_line_keeps_the_object_and_its_time() -> None:
    rec = parse_line("echo-v1-0", line("2026-01-02T03:04:05.678Z", response_code=200))
    assert rec is not None
    assert rec.time == dt.datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=dt.UTC)
    assert rec.to_json()["replica"] == "echo-v1-0"
    assert rec.to_json()["response_code"] == 200
    assert parse_line("x", "not json") is None
    assert parse_line("x", "[1, 2]") is None


def test_read_access_merges_replicas_by_time_and_filters_by_since(tmp_path: Path) -> None:
    a = Replica("a", "w", tmp_path / "a.access.log", None)
    b = Replica("b", "w", tmp_path / "b.access.log", None)
    append(
        tmp_path / "a.access.log",
        line("2026-01-01T00:00:01.000Z", path="/1"),
        "garbage",
        line("2026-01-01T00:00:03.000Z", path="/3"),
    )
    append(tmp_path / "b.access.log", line("2026-01-01T00:00:02.000Z", path="/2"))
    missing = Replica("c", "w", tmp_path / "never-written.log", None)
    got = read_access([a, b, missing])
    assert [(r.replica, r.fields["path"]) for r in got] == [("a", "/1"), ("b", "/2"), ("a", "/3")]
    since = dt.datetime(2026, 1, 1, 0, 0, 2, tzinfo=dt.UTC)
    assert [r.fields["path"] for r in read_access([a, b], since)] == ["/2", "/3"]


def test_since_cutoff() -> None:
    now = dt.datetime(2026, 1, 1, 0, 1, tzinfo=dt.UTC)
    assert since_cutoff(30, now) == dt.datetime(2026, 1, 1, 0, 0, 30, tzinfo=dt.UTC)
    assert since_cutoff(None, now) is None


def test_follow_access_prints_what_is_there_then_what_is_appended(tmp_path: Path) -> None:
    a = Replica("a", "w", tmp_path / "a.access.log", None)
    assert a.access_log is not None
    append(a.access_log, line("2026-01-01T00:00:01.000Z", path="/old"))
    known = [a]
    batches = follow_access(lambda: known, FollowOptions(poll_s=0, refresh_s=0))
    assert [r.fields["path"] for r in next(batches)] == ["/old"]
    assert next(batches) == []
    now = dt.datetime.now(dt.UTC).isoformat()
    append(a.access_log, line(now, path="/new"))
    assert [r.fields["path"] for r in next(batches)] == ["/new"]
    # a replica that appears later: its records from before following began are old news
    b = Replica("b", "w", tmp_path / "b.access.log", None)
    assert b.access_log is not None
    append(b.access_log, line("2026-01-01T00:00:02.000Z", path="/b-old"), line(now, path="/b-new"))
    known.append(b)  # seen at the next refresh
    got = [r.fields["path"] for r in next(batches)]
    assert got == ["/b-new"]


def test_follow_app_prefixes_nothing_but_keeps_the_replica(tmp_path: Path) -> None:
    a = Replica("a", "w", None, tmp_path / "a.log")
    assert a.app_log is not None
    append(a.app_log, "started")
    once = list(follow_app(lambda: [a], FollowOptions(), follow=False))
    assert once == [[("a", "started")]]
    batches = follow_app(lambda: [a], FollowOptions(poll_s=0))
    assert next(batches) == [("a", "started")]
    append(a.app_log, "GET /x")
    assert next(batches) == [("a", "GET /x")]
