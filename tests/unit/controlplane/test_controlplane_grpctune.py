"""The control plane's gRPC settings: set before gRPC loads, an operator's own kept."""

from __future__ import annotations

import json
import subprocess
import sys

from plait.controlplane import grpctune


def _python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )


def _without_variable() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k != grpctune.VARIABLE}


def test_environ_adds_the_experiments_and_keeps_an_operators_own() -> None:
    assert grpctune.environ({"A": "1"}) == {"A": "1", grpctune.VARIABLE: grpctune.EXPERIMENTS}
    assert grpctune.environ({grpctune.VARIABLE: ""})[grpctune.VARIABLE] == ""  # gRPC's own
    assert grpctune.environ({grpctune.VARIABLE: "x"})[grpctune.VARIABLE] == "x"


_TUNE = """
import json, os, sys
from plait.controlplane import grpctune
{before}
applied = grpctune.tune()
print(json.dumps([applied, os.environ.get(grpctune.VARIABLE)]))
"""


def test_tune_sets_the_variable_before_grpc_loads() -> None:
    done = _python(_TUNE.format(before=""), _without_variable())
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [True, grpctune.EXPERIMENTS]


def test_tune_keeps_an_operators_own_value() -> None:
    env = _without_variable() | {grpctune.VARIABLE: ""}
    done = _python(_TUNE.format(before=""), env)
    assert json.loads(done.stdout) == [True, ""]


def test_tune_after_grpc_loaded_says_it_cannot() -> None:
    done = _python(_TUNE.format(before="import grpc"), _without_variable())
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [False, None]
    assert "gRPC was loaded before its settings were applied" in done.stderr


# A server and a client on loopback; gRPC's `tcp` trace names the file of each TCP
# endpoint it uses: `tcp_posix.cc` is the I/O manager's, EventEngine's go through
# `endpoint.cc`.
_SERVE = """
import asyncio, sys
if sys.argv[1] == "tuned":
    from plait.controlplane import grpctune
    assert grpctune.tune()
import grpc

async def main():
    server = grpc.aio.server()
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    await asyncio.wait_for(channel.channel_ready(), 20)
    await channel.close()
    await server.stop(0)

asyncio.run(main())
"""


def _endpoint_files(mode: str) -> str:
    env = _without_variable() | {"GRPC_VERBOSITY": "debug", "GRPC_TRACE": "tcp"}
    done = subprocess.run(
        [sys.executable, "-c", _SERVE, mode], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return done.stderr


def test_tuned_connections_run_on_the_io_manager() -> None:
    """This grpcio honours the experiments: without them its TCP endpoints are
    EventEngine's, with them the I/O manager's (a grpcio that drops the experiments
    fails here, and the settings must be looked at again)."""
    default = _endpoint_files("default")
    assert "tcp_posix.cc" not in default
    tuned = _endpoint_files("tuned")
    assert "tcp_server_posix.cc" in tuned and "tcp_posix.cc" in tuned, tuned[-4000:]
