"""`plait discovery` run as a process for the Kubernetes e2e tests."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

from kubecluster import Cluster, free_port


class Discovery:
    """`plait discovery` as a process on free ports of `host`, with its log."""

    def __init__(
        self,
        kube: Cluster,
        workdir: Path,
        ports: tuple[int, int] | None = None,
        extra: tuple[str, ...] = (),
        host: str = "127.0.0.1",
        env: dict[str, str] | None = None,
    ) -> None:
        self.host = host
        self.xds_port, self.status_port = ports or (free_port(), free_port())
        self.log = workdir / "discovery.log"
        plait = str(Path(sys.executable).with_name("plait"))
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [plait, "discovery", "--kubeconfig", str(kube.kubeconfig), "--host",
                 host, "--xds-port", str(self.xds_port),
                 "--status-port", str(self.status_port), *extra],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=env,
            )  # fmt: skip

    def status(self) -> dict[str, Any]:
        url = f"http://{self.host}:{self.status_port}/status"
        with urllib.request.urlopen(url, timeout=5) as r:
            body: dict[str, Any] = json.load(r)
            return body

    def try_status(self) -> dict[str, Any] | None:
        assert self.proc.poll() is None, self.log.read_text()[-3000:]
        with contextlib.suppress(OSError):
            return self.status()
        return None

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, 15)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, 9)
            self.proc.wait()
