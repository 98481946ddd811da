"""A real Envoy on the host as a mesh sidecar of a Kubernetes namespace, for the tests of
`plait discovery` (tests/e2e/kube): its bootstrap points at the control plane's xDS port
(plaintext, or mTLS with a certificate from a given CA directory), its SDS server serves
that certificate, and helpers read its endpoints and send requests through it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import tempfile
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from kubecluster import free_port
from plait.agent.bootstrap import BootstrapOptions, bootstrap
from plait.agent.caclient import Issued
from plait.agent.envoy import find_envoy
from plait.agent.identity import WorkloadCertificate, certificate_from, make_csr, new_key
from plait.agent.sds import SdsServer
from plait.ca import CertificateAuthority
from plait.model.identity import SpiffeId, control_plane_identity
from plait.model.labels import Labels
from plait.model.proxy import Proxy, ProxyKind, node_id


class StaticSds:
    """The agent's SDS server (plait.agent.sds) on its own loop in a thread, serving one
    certificate from a throwaway mesh CA: the mesh clusters name the SDS secrets (auto
    mTLS), and Envoy warms them only once the secrets arrive. xDS itself stays plaintext."""

    def __init__(self, workdir: Path, identity: SpiffeId, ca_dir: Path | None = None) -> None:
        ca = CertificateAuthority.load(
            ca_dir or workdir / "ca", identity.trust_domain, create=ca_dir is None
        )
        key = new_key()
        issued = ca.sign(make_csr(key, identity), identity)
        answer = Issued(
            tuple(c.encode() for c in issued.chain),
            tuple(r.encode() for r in ca.trust_bundle()),
            issued.signer,
        )
        self.current: WorkloadCertificate | None = certificate_from(answer, key, identity)
        self.socket = Path(tempfile.mkdtemp(dir="/tmp", prefix="sds")) / "sds.sock"
        self.loop = asyncio.new_event_loop()
        self.server = SdsServer(self, self.socket)
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(10)

    def subscribe(self, callback: Callable[[WorkloadCertificate], None]) -> Callable[[], None]:
        return lambda: None

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


class Envoy:
    """A real Envoy whose bootstrap points at `plait discovery` (plaintext xDS)."""

    def __init__(
        self,
        workdir: Path,
        xds_port: int,
        pod: str = "client-0",
        labels: dict[str, str] | None = None,
        ca_dir: Path | None = None,
        *,
        namespace: str,
        host: str,
        xds_host: str = "127.0.0.1",
    ) -> None:
        """A sidecar for `pod` in `namespace` (workload: its name up to the last '-'),
        calling the Service `host` (port 80); with `ca_dir`, its certificate comes from that
        CA and xDS is mTLS to the control plane at `xds_host`."""
        self.host, self.cluster = host, f"outbound|80||{host}"
        self.admin_port, self.outbound_port = free_port(), free_port()
        self.proxy = Proxy(
            id=node_id(ProxyKind.SIDECAR, pod, namespace),
            kind=ProxyKind.SIDECAR,
            workload=pod.rsplit("-", 2)[0] if ca_dir else "client",
            namespace=namespace,
            labels=Labels.of(labels or {"app": "client"}),
            inbound_port=free_port(),
            app_port=free_port(),
            outbound_port=self.outbound_port,
        )
        self.sds = StaticSds(workdir, SpiffeId("cluster.local", namespace, "default"), ca_dir)
        options = BootstrapOptions(
            self.proxy,
            self.admin_port,
            xds_host,
            xds_port,
            sds_socket=str(self.sds.socket),
            xds_identity=control_plane_identity("cluster.local") if ca_dir else None,
        )
        config = workdir / f"envoy-{pod}.json"
        config.write_text(json.dumps(bootstrap(options)))
        self.log = workdir / f"envoy-{pod}.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [str(find_envoy()), "-c", str(config), "--base-id", str(free_port()),
                 "--concurrency", "1", "--log-level", "info"],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip

    def admin(self, path: str) -> str:
        url = f"http://127.0.0.1:{self.admin_port}{path}"
        with urllib.request.urlopen(url, timeout=5) as r:
            return str(r.read().decode())

    def endpoints(self) -> set[str]:
        clusters = json.loads(self.admin("/clusters?format=json"))
        for c in clusters.get("cluster_statuses", []):
            if c["name"] == self.cluster:
                return {
                    f"{h['address']['socket_address']['address']}:{h['address']['socket_address']['port_value']}"
                    for h in c.get("host_statuses", [])
                }
        return set()

    def get(self, path: str = "/") -> tuple[int, str]:
        """GET http://web/PATH through the outbound listener (an HTTP proxy)."""
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({"http": f"http://127.0.0.1:{self.outbound_port}"})
        )
        try:
            with opener.open(f"http://{self.host}{path}", timeout=5) as r:
                return r.status, r.headers.get("x-route", "")
        except urllib.error.HTTPError as e:
            return e.code, e.headers.get("x-route", "")

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, 9)
        self.proc.wait()
        self.sds.stop()

    def diagnostics(self) -> str:
        dump = ""
        with contextlib.suppress(OSError):
            dump = self.admin("/config_dump")
        return f"--- envoy log ---\n{self.log.read_text()[-4000:]}\n--- config dump ---\n{dump[-8000:]}"
