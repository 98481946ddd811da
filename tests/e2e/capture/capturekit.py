"""Helpers for the capture e2e tests: host snapshots, echo servers and a TCP client run
inside pods, and one Envoy with a small hand-made static config for captured traffic.

Processes run with /usr/bin/python3 (the proxy UID cannot read root's home, where the
venv's interpreter may live)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

from plait.agent.envoy import find_envoy
from plait.podnet import Pod, PodNetwork

PYTHON = "/usr/bin/python3"
PROXY_UID = 1337
ADMIN_PORT = 15000
DEADLINE_S = 15.0
T = TypeVar("T")
ROOT_ONLY = pytest.mark.skipif(
    os.geteuid() != 0, reason="network namespaces and iptables need root (CI runs as root)"
)

ECHO = r"""
import socket, sys, threading
from pathlib import Path

def serve(sock):
    while True:
        conn, peer = sock.accept()
        print(sock.getsockname()[1], peer[0], flush=True)  # one line per connection that got here
        with conn:
            data = conn.recv(1024)
            conn.sendall(f"{sock.getsockname()[1]} {peer[0]} ".encode() + data)

socks = []
for port in sys.argv[2:]:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", int(port)))
    s.listen(64)
    socks.append(s)
for s in socks[1:]:
    threading.Thread(target=serve, args=(s,), daemon=True).start()
Path(sys.argv[1]).write_text("ready")
serve(socks[0])
"""

CLIENT = r"""
import socket, sys
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5) as s:
    s.sendall(b"hi")
    print(s.recv(1024).decode())
"""


def wait_for(what: str, probe: Callable[[], T | None], deadline_s: float = DEADLINE_S) -> T:
    """Poll `probe` until it returns something other than None; fail naming `what`."""
    end = time.monotonic() + deadline_s
    while True:
        got = probe()
        if got is not None:
            return got
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {deadline_s}s waiting for {what}")
        time.sleep(0.05)


def run(argv: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    if check and done.returncode != 0:
        raise AssertionError(f"{argv} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done


def host_snapshot() -> dict[str, str]:
    """What a pod network may leave behind on the host, as comparable text."""
    etc = Path("/etc/netns")
    return {
        "netns": run(["ip", "netns", "list"]).stdout,
        "iptables": "\n".join(
            line for line in run(["iptables-save"]).stdout.splitlines() if not line.startswith("#")
        ),
        "links": run(["ip", "-br", "link"]).stdout,
        "routes": run(["ip", "route", "show", "table", "all"]).stdout,
        "etc-netns": " ".join(sorted(os.listdir(etc))) if etc.exists() else "(none)",
    }


def connect(pod: Pod, ip: object, port: int, uid: int | None = None) -> str:
    """Open a TCP connection from inside `pod` (as `uid`), send "hi", return the reply."""
    return run(pod.exec_argv([PYTHON, "-c", CLIENT, str(ip), str(port)], uid=uid)).stdout.strip()


@dataclass
class Procs:
    """Processes a test started; `stop` kills each by its own id and waits."""

    items: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, argv: list[str], log: Path) -> subprocess.Popen[bytes]:
        with log.open("wb") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        self.items.append(proc)
        return proc

    def stop(self) -> None:
        for proc in self.items:
            self.stop_one(proc)

    @staticmethod
    def stop_one(proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def start_echo(procs: Procs, pod: Pod, workdir: Path, *ports: int) -> Path:
    """An echo server in `pod` on `ports`; returns its log (a line per accepted connection)."""
    ready = workdir / f"{pod.name}.ready"
    log = workdir / f"{pod.name}-echo.log"
    procs.start(pod.exec_argv([PYTHON, "-c", ECHO, str(ready), *map(str, ports)]), log)
    wait_for(f"echo server in {pod.name} on {ports}", lambda: ready.exists() or None)
    return log


def _tcp_listener(name: str, port: int, cluster: str, prefix: str, log: str) -> dict[str, Any]:
    fmt = {
        "listener": prefix,
        "original_dst": "%DOWNSTREAM_LOCAL_ADDRESS%",
        "downstream": "%DOWNSTREAM_REMOTE_ADDRESS%",
        "upstream": "%UPSTREAM_HOST%",
    }
    return {
        "name": name,
        "address": {"socket_address": {"address": "0.0.0.0", "port_value": port}},
        "use_original_dst": True,
        "listener_filters": [
            {
                "name": "envoy.filters.listener.original_dst",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.listener.original_dst.v3.OriginalDst"
                },
            }
        ],
        "filter_chains": [
            {
                "filters": [
                    {
                        "name": "envoy.filters.network.tcp_proxy",
                        "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
                            "stat_prefix": prefix,
                            "cluster": cluster,
                            "access_log": [
                                {
                                    "name": "envoy.access_loggers.file",
                                    "typed_config": {
                                        "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
                                        "path": log,
                                        "log_format": {"json_format": fmt},
                                    },
                                }
                            ],
                        },
                    }
                ]
            }
        ],
    }


def _passthrough(name: str, bind: str | None = None) -> dict[str, Any]:
    cluster: dict[str, Any] = {
        "name": name,
        "type": "ORIGINAL_DST",
        "lb_policy": "CLUSTER_PROVIDED",
        "connect_timeout": "5s",
    }
    if bind:
        cluster["upstream_bind_config"] = {"source_address": {"address": bind, "port_value": 0}}
    return cluster


def envoy_config(access_log: str) -> dict[str, Any]:
    """Virtual outbound (15001) and inbound (15006) listeners with original destination,
    each to a passthrough cluster; inbound binds 127.0.0.6 as Istio's does."""
    return {
        "admin": {"address": {"socket_address": {"address": "0.0.0.0", "port_value": ADMIN_PORT}}},
        "static_resources": {
            "listeners": [
                _tcp_listener(
                    "virtualOutbound", 15001, "PassthroughCluster", "outbound", access_log
                ),
                _tcp_listener(
                    "virtualInbound", 15006, "InboundPassthroughCluster", "inbound", access_log
                ),
            ],
            "clusters": [
                _passthrough("PassthroughCluster"),
                _passthrough("InboundPassthroughCluster", bind="127.0.0.6"),
            ],
        },
    }


@dataclass
class PodEnvoy:
    """An Envoy running as the proxy UID inside a pod, its admin reached via the pod IP."""

    pod: Pod
    workdir: Path
    log: Path
    access_log: Path
    proc: subprocess.Popen[bytes] | None = None

    def admin(self, path: str) -> str:
        url = f"http://{self.pod.ip}:{ADMIN_PORT}{path}"
        with urllib.request.urlopen(url, timeout=5) as resp:
            return str(resp.read().decode())

    def stat(self, name: str) -> int:
        data = json.loads(self.admin(f"/stats?format=json&filter=^{name}$"))
        values = [s.get("value", 0) for s in data.get("stats", []) if s.get("name") == name]
        return int(values[0]) if values else 0

    def access_entries(self) -> list[dict[str, str]]:
        text = self.access_log.read_text() if self.access_log.exists() else ""
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def diagnostics(self) -> str:
        parts = [f"--- Envoy log ({self.log}) ---", self.log.read_text(errors="replace")]
        parts += [
            "--- access log ---",
            self.access_log.read_text() if self.access_log.exists() else "",
        ]
        try:
            parts += ["--- config dump ---", self.admin("/config_dump")]
        except OSError as exc:
            parts += [f"--- config dump unavailable: {exc} ---"]
        return "\n".join(parts)


def start_envoy(
    procs: Procs, pod: Pod, workdir: Path, bootstrap: dict[str, Any] | None = None
) -> PodEnvoy:
    """Envoy in `pod` as the proxy UID, with files it may read and write in `workdir`;
    `bootstrap` (admin on ADMIN_PORT) replaces the hand-made `envoy_config`."""
    workdir.mkdir(mode=0o755, exist_ok=True)
    access_log = workdir / "access.log"
    access_log.touch()
    shutil.chown(access_log, PROXY_UID, PROXY_UID)
    config = workdir / "envoy.json"
    config.write_text(json.dumps(bootstrap or envoy_config(str(access_log))))
    config.chmod(0o644)
    envoy = PodEnvoy(pod, workdir, workdir / "envoy.log", access_log)
    argv = [
        str(find_envoy()), "-c", str(config), "--disable-hot-restart", "-l", "info",
        "--file-flush-interval-msec", "100",
    ]  # fmt: skip
    envoy.proc = procs.start(pod.exec_argv(argv, uid=PROXY_UID), envoy.log)

    def ready() -> bool | None:
        try:
            return envoy.admin("/ready").strip() == "LIVE" or None
        except OSError:
            return None

    wait_for(f"Envoy in {pod.name} to be LIVE", ready)
    return envoy


@dataclass
class Pods:
    """The capture tests' pods: `app` with its Envoy, `server` and `other`."""

    net: PodNetwork
    app: Pod
    server: Pod
    other: Pod
    envoy: PodEnvoy
