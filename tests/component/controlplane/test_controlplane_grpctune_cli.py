"""`plait controlplane` applies the control plane's gRPC settings before gRPC loads: its
accepted xDS connections run on gRPC's I/O manager (see `controlplane/grpctune.py`)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from plait.controlplane import grpctune
from prockit import stop_process

START_TIMEOUT_S = 30.0


def _serve_once(env: dict[str, str]) -> str:
    """Start the control plane on free ports, connect to its xDS port once, stop it;
    its standard error."""
    with tempfile.TemporaryDirectory(prefix="plait-grpctune-") as tmp:
        errors = Path(tmp) / "stderr"
        argv = [sys.executable, "-m", "plait", "controlplane", tmp]
        argv += ["--xds-port", "0", "--status-port", "0"]
        with errors.open("w") as sink:
            proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=sink)
        try:
            deadline = time.monotonic() + START_TIMEOUT_S
            port = None
            while port is None:
                found = re.search(r"ADS server listening on \S+ \(port (\d+)", errors.read_text())
                if found:
                    port = int(found[1])
                elif proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(
                        f"no xDS port within {START_TIMEOUT_S:g}s:\n" + errors.read_text()[-4000:]
                    )
                else:
                    time.sleep(0.05)
            with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
                conn.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")  # the HTTP/2 preface
                while "tcp_server_posix.cc" not in (text := errors.read_text()) and (
                    "endpoint.cc" not in text
                ):
                    if time.monotonic() > deadline:
                        break
                    time.sleep(0.05)
        finally:
            stop_process(proc)
        return errors.read_text()


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != grpctune.VARIABLE}
    return env | {"GRPC_VERBOSITY": "debug", "GRPC_TRACE": "tcp"} | extra


def test_controlplane_serves_xds_on_the_io_manager() -> None:
    text = _serve_once(_env())
    assert "tcp_server_posix.cc" in text, text[-4000:]
    assert "gRPC was loaded before" not in text


def test_an_operators_grpc_experiments_win() -> None:
    """GRPC_EXPERIMENTS set (empty: gRPC's defaults) is left as it is."""
    text = _serve_once(_env(**{grpctune.VARIABLE: ""}))
    assert "tcp_server_posix.cc" not in text and "endpoint.cc" in text, text[-4000:]
