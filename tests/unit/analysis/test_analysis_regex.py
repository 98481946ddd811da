"""`envoy_regex_problem` agrees with the real Envoy (`envoy --mode validate`) on every case,
with the runtime plait's own bootstrap gives every Envoy it starts."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from plait.agent.bootstrap import BootstrapOptions, bootstrap
from plait.agent.envoy import find_envoy
from plait.analysis.regex import MAX_PROGRAM_SIZE, envoy_regex_problem
from plait.model.proxy import Proxy, ProxyKind, node_id

PROXY = Proxy(
    id=node_id(ProxyKind.SIDECAR, "reviews-v1-0", "default"),
    kind=ProxyKind.SIDECAR,
    workload="reviews-v1",
    namespace="default",
    service_account="reviews",
)
RUNTIME = bootstrap(BootstrapOptions(PROXY, admin_port=0, xds_host="127.0.0.1", xds_port=1))[
    "layered_runtime"
]
BIG = "[a-z]{1,1000}"

ACCEPTED = [
    "/api/.*",
    "/api/v[0-9]+/.*",
    r"\d+",
    "(?i)abc",
    "(?P<n>a)",
    "[a-z]{1,50}",  # program size 103: over Envoy's default 100, not over Istio's 32768
    r"\pL{30}",  # 35884 as UTF-8, 214 as Envoy counts it
    "é{60}",
    ".{1,1000}x.{1,1000}",  # 6003
    BIG * 16,  # 31988
    "[[:alpha:]]{40}",
    "[本-日]",  # a backwards range in UTF-8, yet Envoy takes it
]
REJECTED = [
    "^/(?!admin).*",  # lookahead
    "(?<=a)b",  # lookbehind
    r"(a)\1",  # backreference
    r"\Z",
    "a{1001}",  # repetition limit
    "(unclosed",
    "*",
    "",
    "(.{1,100}){1,100}",  # nested repetition over 1000
    BIG * 17,  # 33987
]


def route_bootstrap(regex: str) -> dict[str, object]:
    router = {
        "name": "envoy.filters.http.router",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
        },
    }
    route = {"match": {"safe_regex": {"regex": regex}}, "direct_response": {"status": 200}}
    hcm = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "t",
        "http_filters": [router],
        "route_config": {"virtual_hosts": [{"name": "v", "domains": ["*"], "routes": [route]}]},
    }
    listener = {
        "name": "l",
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
        "filter_chains": [{"filters": [{"name": "hcm", "typed_config": hcm}]}],
    }
    return {"layered_runtime": RUNTIME, "static_resources": {"listeners": [listener]}}


def envoy_verdict(tmp_path: Path, regex: str) -> str | None:
    """Envoy's error for a route matching `regex`, or None if it accepts it."""
    path = tmp_path / "bootstrap.json"
    path.write_text(json.dumps(route_bootstrap(regex), ensure_ascii=False), encoding="utf-8")
    done = subprocess.run(
        [str(find_envoy()), "--mode", "validate", "--log-level", "error", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return None if done.returncode == 0 else done.stderr


@pytest.mark.parametrize("regex", ACCEPTED + REJECTED)
def test_plait_and_envoy_agree(tmp_path: Path, regex: str) -> None:
    ours, envoys = envoy_regex_problem(regex), envoy_verdict(tmp_path, regex)
    assert (ours is None) == (envoys is None), f"plait: {ours!r}\nenvoy: {envoys}"
    assert (ours is None) == (regex in ACCEPTED)
    size = re.search(r"RE2 program size of (\d+) >", envoys or "")
    if size is not None:  # the same program size as Envoy counts
        assert ours is not None and f"RE2 program size {size.group(1)} > {MAX_PROGRAM_SIZE}" in ours


def test_the_message_says_what_to_do() -> None:
    lookahead = envoy_regex_problem("^/(?!admin).*")
    assert lookahead is not None and "invalid perl operator: (?!" in lookahead
    assert "re2/wiki/Syntax" in lookahead
    too_big = envoy_regex_problem(BIG * 17)
    assert too_big is not None and "simplify" in too_big


def test_the_limit_is_the_one_plaits_envoys_run_with() -> None:
    layers = {layer["name"]: layer for layer in RUNTIME["layers"]}
    assert layers["static"]["static_layer"]["re2.max_program_size.error_level"] == MAX_PROGRAM_SIZE
