"""The benchmarks' process environments: the control plane's gRPC settings are its own."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # bench/ is a top-level package

from bench import procs  # noqa: E402

from plait.controlplane import grpctune  # noqa: E402


def test_proxies_run_on_grpc_defaults_unless_asked() -> None:
    assert grpctune.VARIABLE not in procs.PROXY_ENVIRON
    assert grpctune.VARIABLE not in procs.proxy_environ("default")
    tuned = procs.proxy_environ("io-manager")
    assert tuned[grpctune.VARIABLE] == grpctune.EXPERIMENTS
    assert {k: v for k, v in tuned.items() if k != grpctune.VARIABLE} == procs.PROXY_ENVIRON


def test_an_unknown_choice_is_refused() -> None:
    with pytest.raises(ValueError, match="neither 'default' nor 'io-manager'"):
        procs.proxy_environ("fast")


def test_an_unknown_scheduling_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="neither 'batch' nor 'normal'"):
        procs.with_sched(["true"], "fifo")
