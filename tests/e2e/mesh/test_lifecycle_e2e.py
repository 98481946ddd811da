"""`plait up` in the foreground, Ctrl-C, failed starts: no process is ever left behind."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from meshkit import SHOP, Mesh, copy_mesh, plait, processes_under

BROKEN_APP = """apiVersion: v1
kind: Service
metadata: {name: broken}
spec:
  selector: {app: broken}
  ports: [{name: http, port: 8080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: broken}
spec:
  selector: {matchLabels: {app: broken}}
  template:
    metadata: {labels: {app: broken}}
    spec:
      containers:
      - name: app
        image: none
        command: [python, -c, "import sys; print('no listener here'); sys.exit(3)"]
"""


def _wait_gone(root: Path, timeout: float) -> list[str]:
    deadline = time.monotonic() + timeout
    while (left := processes_under(root)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def test_foreground_up_then_ctrl_c_stops_everything(tmp_path: Path) -> None:
    root = copy_mesh(SHOP, tmp_path / "shop")
    proc = subprocess.Popen(
        [sys.executable, "-m", "plait", "up", str(root), "--gateway-port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        for line in proc.stdout:
            lines.append(line)
            if "mesh ready" in line or time.monotonic() > deadline:
                break
        assert any("mesh ready" in line for line in lines), "".join(lines)
        assert any(line.startswith("gateway: http://127.0.0.1:") for line in lines)
        assert len(processes_under(root)) >= 18  # control plane, 9 Envoys, 8 apps
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert _wait_gone(root, 5) == []
    assert not (root / ".plait" / "state.json").exists()


def test_failed_up_exits_non_zero_and_leaves_nothing(tmp_path: Path) -> None:
    root = tmp_path / "broken"
    root.mkdir()
    (root / "app.yaml").write_text(BROKEN_APP)
    result = Mesh(root).up("--timeout", "4")
    assert result.returncode == 4, result.stdout + result.stderr
    assert "broken-0 to listen on $PORT" in result.stdout + result.stderr
    assert _wait_gone(root, 10) == []


def test_gateway_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    root = copy_mesh(SHOP, tmp_path / "shop")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = plait("up", str(root), "--detach", "--gateway-port", str(port))
    assert result.returncode == 4
    assert f"gateway port {port} is already in use" in result.stdout + result.stderr
    assert _wait_gone(root, 10) == []


@pytest.mark.parametrize("command", ["status", "down"])
def test_commands_without_a_running_mesh(tmp_path: Path, command: str) -> None:
    root = copy_mesh(SHOP, tmp_path / "shop")
    result = plait(command, str(root))
    if command == "status":
        assert result.returncode == 3
        assert "no mesh is running" in result.stderr
    else:
        assert result.returncode == 0
        assert "nothing to stop" in result.stdout
