"""A real Kubernetes control plane on loopback for tests: etcd, kube-apiserver,
kube-controller-manager and kube-scheduler, built from the Kubernetes Go modules
(testing/k8s/build.sh, cached outside the repo) and started on free ports.

Importable from every test directory (tests/conftest.py puts this directory on sys.path),
and a script for `make cluster-up` / `make cluster-down`:

    python tests/kubecluster.py up [DIR]     # prints: export KUBECONFIG=DIR/admin.kubeconfig
    python tests/kubecluster.py down [DIR]   # stops every process, removes DIR

Everything the cluster makes lives in its directory: PKI (a CA, the API server's serving
certificate, an admin client certificate in `system:masters`, the service-account signing
key), etcd's data, the kubeconfig, each component's log, and `pids` (one line per process:
pid and start time, so `down` never signals a recycled pid). Processes run in their own
session; `stop()` sends SIGTERM, then SIGKILL after a grace period, and returns only when
they are gone.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import ipaddress
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

REPO = Path(__file__).resolve().parent.parent
BUILD = REPO / "testing" / "k8s" / "build.sh"
DEFAULT_DIR = Path(os.environ.get("PLAIT_CLUSTER_DIR", "/tmp/plait-cluster"))
ISSUER = "https://kubernetes.default.svc.cluster.local"
SERVICE_CIDR = "10.96.0.0/16"
START_TIMEOUT = 90.0

CONTROLLERS = ",".join(
    [
        "deployment-controller",
        "replicaset-controller",
        "endpointslice-controller",
        "endpointslice-mirroring-controller",
        "endpoints-controller",
        "serviceaccount-controller",
        "serviceaccount-token-controller",
        "root-ca-certificate-publisher-controller",
        "garbage-collector-controller",
        "namespace-controller",
        "pod-garbage-collector-controller",
        "job-controller",
        "ttl-after-finished-controller",
        "statefulset-controller",
        "daemonset-controller",
        "clusterrole-aggregation-controller",
        "node-lifecycle-controller",
        "taint-eviction-controller",
    ]
)


def binaries() -> Path:
    """The directory holding the binaries; builds them first when the cache misses."""
    out = subprocess.run(["bash", str(BUILD)], check=True, stdout=subprocess.PIPE, text=True).stdout
    return Path(out.strip().splitlines()[-1])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- PKI --------------------------------------------------------------------------------


def _cert(
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None = None,
    *,
    ca: bool = False,
    sans: list[x509.GeneralName] | None = None,
    usage: list[x509.ObjectIdentifier] | None = None,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    issuer_name, issuer_key = issuer or (subject, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    if usage:
        builder = builder.add_extension(x509.ExtendedKeyUsage(usage), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _name(cn: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


def _pem_key(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def make_pki(pki: Path) -> None:
    """ca.crt/key, apiserver.crt/key, admin.crt/key (system:masters), sa.key/sa.pub."""
    pki.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert(_name("plait test cluster CA"), ca_key, ca=True)
    (pki / "ca.crt").write_bytes(_pem(ca))
    (pki / "ca.key").write_bytes(_pem_key(ca_key))
    dns = [
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
    ]
    ips = ["127.0.0.1", str(next(ipaddress.ip_network(SERVICE_CIDR).hosts()))]
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    for name, subject, san, usage in (
        ("apiserver", _name("kube-apiserver"), sans, ExtendedKeyUsageOID.SERVER_AUTH),
        ("admin", _name("plait-admin", "system:masters"), None, ExtendedKeyUsageOID.CLIENT_AUTH),
    ):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _cert(subject, key, (ca.subject, ca_key), sans=san, usage=[usage])
        (pki / f"{name}.crt").write_bytes(_pem(cert))
        (pki / f"{name}.key").write_bytes(_pem_key(key))
    sa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (pki / "sa.key").write_bytes(_pem_key(sa))
    (pki / "sa.pub").write_bytes(
        sa.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def write_kubeconfig(path: Path, server: str, pki: Path) -> None:
    def b64(p: Path) -> str:
        return base64.b64encode(p.read_bytes()).decode()

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "plait-test",
                "cluster": {
                    "server": server,
                    "certificate-authority-data": b64(pki / "ca.crt"),
                },
            }
        ],
        "users": [
            {
                "name": "plait-admin",
                "user": {
                    "client-certificate-data": b64(pki / "admin.crt"),
                    "client-key-data": b64(pki / "admin.key"),
                },
            }
        ],
        "contexts": [
            {"name": "plait-test", "context": {"cluster": "plait-test", "user": "plait-admin"}}
        ],
        "current-context": "plait-test",
    }
    path.write_text(json.dumps(config, indent=2))  # JSON is YAML


# --- processes --------------------------------------------------------------------------


def _start_time(pid: int) -> str | None:
    """Field 22 of /proc/PID/stat (start time in clock ticks): tells a pid's reuse apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _alive(pid: int, started: str) -> bool:
    return _start_time(pid) == started


@dataclass
class Cluster:
    """A running control plane; `kubeconfig` is the admin's."""

    directory: Path
    bin: Path
    with_node: bool = False
    apiserver_args: tuple[str, ...] = ()
    ports: dict[str, int] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def kubeconfig(self) -> Path:
        return self.directory / "admin.kubeconfig"

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.ports['apiserver']}"

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> str:
        """Run the cluster's kubectl; returns stdout (raises with stderr when `check`)."""
        done = subprocess.run(
            [str(self.bin / "kubectl"), "--kubeconfig", str(self.kubeconfig), *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed: {done.stderr.strip()}")
        return done.stdout if check else done.stdout + done.stderr

    def apply_crds(self, timeout: float = 30.0) -> None:
        """plait's CRDs (`python -m plait.kube.crds`) applied server-side and Established.

        `--force-conflicts`: another module of the session may have installed them with
        helm or kubectl (other field managers); this module's version wins, as it would for
        an operator upgrading them. Retried, bounded, the YAML made again each time and sent
        as a file: kubectl's client side can fail for a moment while the API server
        republishes its OpenAPI after another CRD change, and once (twice in CI, never
        reproduced) kubectl refused the YAML as unparsable for 30 s. On timeout the error
        has kubectl's output and the file it was given, which is kept."""
        sent = self.directory / "crds.yaml"
        deadline = time.monotonic() + timeout
        while True:
            crds = subprocess.run(
                [sys.executable, "-m", "plait.kube.crds"],
                check=True, capture_output=True, text=True,
            ).stdout  # fmt: skip
            sent.write_text(crds)
            out = self.kubectl(
                "apply", "--server-side", "--force-conflicts", "-f", str(sent), check=False
            )
            if "serverside-applied" in out and "error" not in out.lower():
                break
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"plait's CRDs not applied in {timeout:g} s; kubectl said:\n{out}\n"
                    f"(the YAML it was given: {sent}, {len(crds)} characters)"
                )
            time.sleep(0.5)
        self.kubectl("wait", "--for=condition=established", "crd", "--all")

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = (self.directory / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=self.directory,
        )
        log.close()
        self.procs[name] = proc
        with (self.directory / "pids").open("a") as f:
            f.write(f"{proc.pid} {_start_time(proc.pid)} {name}\n")

    def _check_running(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                tail = (self.directory / f"{name}.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{tail}")

    def _wait(self, what: str, ok: object, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while True:
            self._check_running()
            try:
                if ok():  # type: ignore[operator]
                    return
            except (OSError, RuntimeError, ssl.SSLError):
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{what} not ready after {timeout:.0f} s (logs in {self.directory})"
                )
            time.sleep(0.2)

    def _readyz(self) -> bool:
        ctx = ssl.create_default_context(cafile=str(self.directory / "pki" / "ca.crt"))
        ctx.load_cert_chain(
            self.directory / "pki" / "admin.crt", self.directory / "pki" / "admin.key"
        )
        with urllib.request.urlopen(f"{self.server}/readyz", context=ctx, timeout=5) as r:
            return bool(r.status == 200)

    def start(self) -> None:
        """Start etcd, then the API server, then the controller manager and scheduler;
        returns once the API server is ready and the `default` ServiceAccount exists."""
        d, pki = self.directory, self.directory / "pki"
        make_pki(pki)
        for name in ("etcd", "etcd-peer", "apiserver", "controller-manager", "scheduler"):
            self.ports[name] = free_port()
        etcd_url = f"http://127.0.0.1:{self.ports['etcd']}"
        self._spawn("etcd", [
            str(self.bin / "etcd"), "--data-dir", str(d / "etcd"),
            "--listen-client-urls", etcd_url, "--advertise-client-urls", etcd_url,
            "--listen-peer-urls", f"http://127.0.0.1:{self.ports['etcd-peer']}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{self.ports['etcd-peer']}",
            "--initial-cluster", f"default=http://127.0.0.1:{self.ports['etcd-peer']}",
            "--unsafe-no-fsync", "--log-level", "warn",
        ])  # fmt: skip
        self._spawn("kube-apiserver", [
            str(self.bin / "kube-apiserver"), f"--etcd-servers={etcd_url}",
            "--bind-address=127.0.0.1", f"--secure-port={self.ports['apiserver']}",
            f"--cert-dir={d / 'apiserver-certs'}",
            f"--tls-cert-file={pki / 'apiserver.crt'}", f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            f"--service-account-issuer={ISSUER}", f"--api-audiences={ISSUER}",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--authorization-mode=Node,RBAC", "--enable-aggregator-routing=true",
            "--allow-privileged=true", "--profiling=false", "--v=1", *self.apiserver_args,
        ])  # fmt: skip
        write_kubeconfig(d / "admin.kubeconfig", self.server, pki)
        self._wait("kube-apiserver /readyz", self._readyz)
        common = [f"--kubeconfig={self.kubeconfig}", "--leader-elect=false",
                  "--bind-address=127.0.0.1", "--profiling=false"]  # fmt: skip
        self._spawn("kube-controller-manager", [
            str(self.bin / "kube-controller-manager"), *common,
            f"--secure-port={self.ports['controller-manager']}",
            f"--cert-dir={d / 'kcm-certs'}",
            f"--root-ca-file={pki / 'ca.crt'}",
            f"--service-account-private-key-file={pki / 'sa.key'}",
            "--use-service-account-credentials=true",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            f"--controllers={CONTROLLERS}",
        ])  # fmt: skip
        self._spawn("kube-scheduler", [
            str(self.bin / "kube-scheduler"), *common,
            f"--secure-port={self.ports['scheduler']}", f"--cert-dir={d / 'scheduler-certs'}",
        ])  # fmt: skip
        self._wait(
            "the default ServiceAccount",
            lambda: "default" in self.kubectl("get", "serviceaccount", "default", "-o", "name"),
        )
        if self.with_node:
            node = Path(__file__).with_name("kubenode.py")
            self._spawn(
                "node-agent", [sys.executable, str(node), str(self.kubeconfig), str(d / "node")]
            )
            self._wait("the node", self._node_ready)

    def node_port(self, namespace: str, service: str, port: str = "") -> str:
        """`NODE_IP:nodePort` of a Service's port (by name; without one, the first): the
        node's InternalIP as its Node reports it, where the test node serves NodePorts
        (tests/kubenodeports.py)."""
        ip = self.kubectl("get", "node", "node-1", "-o",
                          'jsonpath={.status.addresses[?(@.type=="InternalIP")].address}')  # fmt: skip
        which = f'?(@.name=="{port}")' if port else "0"
        node_port = self.kubectl("get", "service", service, "-n", namespace, "-o",
                                 f"jsonpath={{.spec.ports[{which}].nodePort}}")  # fmt: skip
        if not ip or not node_port:
            raise AssertionError(
                f"no node port for {namespace}/{service} {port!r}: {ip!r}, {node_port!r}"
            )
        return f"{ip}:{node_port}"

    def _node_ready(self) -> bool:
        out = self.kubectl("get", "node", "node-1", "--ignore-not-found", "-o", "json")
        conditions = json.loads(out)["status"].get("conditions", []) if out else []
        taints = json.loads(out)["spec"].get("taints", []) if out else []
        ready = any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
        return ready and not any(t["effect"] == "NoSchedule" for t in taints)

    def compact(self) -> int:
        """Compact etcd at its current revision (older resourceVersions are gone: a watch
        from one gets 410 Gone when the API server has no watch cache); the revision."""
        etcd = f"http://127.0.0.1:{self.ports['etcd']}/v3/kv"

        def post(path: str, body: dict[str, object]) -> dict[str, Any]:
            request = urllib.request.Request(
                f"{etcd}/{path}", data=json.dumps(body).encode(), method="POST"
            )
            with urllib.request.urlopen(request, timeout=10) as r:
                return dict(json.load(r))

        revision = int(
            post("range", {"key": base64.b64encode(b"/").decode()})["header"]["revision"]
        )
        post("compaction", {"revision": revision, "physical": True})
        return revision

    def stop(self) -> None:
        """Stop every process this cluster started (never returns with one running)."""
        stop_pids(self.directory)
        for proc in self.procs.values():
            proc.wait()

    def running(self) -> list[str]:
        """Names of this cluster's processes that still run."""
        return [name for name, proc in self.procs.items() if proc.poll() is None]

    def diagnostics(self, lines: int = 30) -> str:
        """The last lines of each component's log."""
        out = []
        for name in self.procs:
            log = (self.directory / f"{name}.log").read_text(errors="replace").splitlines()
            out.append(f"--- {name} (last {lines} lines) ---\n" + "\n".join(log[-lines:]))
        return "\n".join(out)


def stop_pids(directory: Path, grace: float = 10.0) -> None:
    """SIGTERM each process in DIR/pids (still the same process), SIGKILL after `grace`."""
    pids_file = directory / "pids"
    if not pids_file.exists():
        return
    clients: list[tuple[int, str]] = []
    storage: list[tuple[int, str]] = []
    for line in pids_file.read_text().splitlines():
        text, started, name = line.split(maxsplit=2)
        if _alive(int(text), started):
            (storage if name == "etcd" else clients).append((int(text), started))
    # etcd last: an API server whose storage is gone hangs in its shutdown
    _terminate(clients, grace)
    _terminate(storage, grace)


def _terminate(entries: list[tuple[int, str]], grace: float) -> None:
    for pid, _ in entries:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for pid, started in entries:
        while _alive(pid, started) and time.monotonic() < deadline:
            _reap(pid)
            time.sleep(0.05)
        if _alive(pid, started):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            while _alive(pid, started):
                _reap(pid)
                time.sleep(0.05)


def _reap(pid: int) -> None:
    """Collect a child's exit status (a zombie child still has a /proc entry)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def up(directory: Path, *, node: bool = False, apiserver_args: tuple[str, ...] = ()) -> Cluster:
    """Start a cluster in `directory` (which must not hold a running one); with `node`, also
    the test node agent (tests/kubenode.py, root only) that runs pods as network namespaces."""
    if (directory / "pids").exists():
        down(directory)
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    cluster = Cluster(directory, binaries(), with_node=node, apiserver_args=apiserver_args)
    try:
        cluster.start()
    except BaseException:
        cluster.stop()
        raise
    return cluster


def down(directory: Path) -> None:
    """Stop the cluster in `directory` and remove everything it made (the node agent
    removes its pods' namespaces and NodePort rules itself; a crashed one's are removed
    from its state file and by its run id)."""
    stop_pids(directory)
    podnet_state = directory / "node" / "podnet.json"
    if podnet_state.exists():
        import kubenodeports
        from plait.podnet import teardown
        from plait.podnet.state import StateFile

        kubenodeports.teardown(StateFile.load(podnet_state).run)
        teardown(podnet_state)
    shutil.rmtree(directory, ignore_errors=True)


def main(argv: list[str]) -> int:
    if len(argv) < 1 or argv[0] not in ("up", "down"):
        print("usage: kubecluster.py up|down [DIR]", file=sys.stderr)
        return 2
    directory = Path(argv[1]).resolve() if len(argv) > 1 else DEFAULT_DIR
    if argv[0] == "down":
        down(directory)
        print(f"stopped; removed {directory}", file=sys.stderr)
        return 0
    began = time.monotonic()
    cluster = up(directory, node=os.geteuid() == 0)
    if not cluster.with_node:
        print("not root: no node agent, pods stay Pending", file=sys.stderr)
    print(
        f"cluster up in {time.monotonic() - began:.1f} s: {cluster.server} "
        f"(logs in {directory}; `make cluster-down` stops it)",
        file=sys.stderr,
    )
    print(f"export KUBECONFIG={cluster.kubeconfig}")
    print(f"export PATH={cluster.bin}:$PATH")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
