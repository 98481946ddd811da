"""`plait up --transparent`: the shop with every replica in its own pod, traffic captured
by iptables, no proxy variables; and nothing left on the host after down, Ctrl-C or a
failed start (root only).

Other helpers' tests may make pod networks at the same time, so "nothing left" is
checked for this run's names (its run id and address ranges, from the pod network's
state file) and for the host's iptables rules as a whole.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from capturekit import ROOT_ONLY, run
from meshkit import (
    SHOP,
    Load,
    Mesh,
    copy_mesh,
    envoy_pid,
    eventually,
    get_json,
    plait,
    processes_under,
)

pytestmark = [ROOT_ONLY]

PROXY_VARS = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "NO_PROXY", "PLAIT_OUTBOUND")


def host_iptables() -> str:
    lines = run(["iptables-save"]).stdout.splitlines()
    return "\n".join(line for line in lines if not line.startswith("#"))


def podnet_state(root: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((root / ".plait" / "podnet.json").read_text())
    return data


def leftovers(run_id: str, cidrs: list[str]) -> list[str]:
    """What of pod network `run_id` is still on the host."""
    etc = Path("/etc/netns")
    found = [
        f"{what}: {line}"
        for what, text in (
            ("netns", run(["ip", "netns", "list"]).stdout),
            ("link", run(["ip", "-br", "link"]).stdout),
            ("etc", "\n".join(os.listdir(etc)) if etc.exists() else ""),
        )
        for line in text.splitlines()
        if run_id in line
    ]
    routes = run(["ip", "route", "show", "table", "all"]).stdout.splitlines()
    found += [f"route: {r}" for r in routes if any(c in r for c in cidrs)]
    return found


def netns_of(root: Path) -> dict[str, str]:
    """This run's pods: network namespace → pod IP (a pod still being made is left out)."""
    out = {}
    for entry in podnet_state(root)["made"]:
        if entry["kind"] != "netns":
            continue
        shown = run(["ip", "-n", entry["name"], "-j", "-4", "addr", "show", "eth0"], check=False)
        addr = json.loads(shown.stdout or "[]") if shown.returncode == 0 else []
        if addr and addr[0].get("addr_info"):
            out[entry["name"]] = addr[0]["addr_info"][0]["local"]
    return out


def pids_in(netns: str) -> list[int]:
    return [int(p) for p in run(["ip", "netns", "pids", netns]).stdout.split()]


def environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    pairs = (item.decode(errors="replace").split("=", 1) for item in raw if b"=" in item)
    return {k: v for k, v in pairs}


def sidecars_crossed(call: dict[str, Any]) -> list[tuple[str, str]]:
    """(sidecar, peer identity) of every hop in a shop response's call tree."""
    hops = [(call["sidecar"], call.get("peer", ""))]
    for sub in call.get("calls", []):
        if isinstance(sub.get("response"), dict):
            hops += sidecars_crossed(sub["response"])
    return hops


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    before = host_iptables()
    root = copy_mesh(SHOP, tmp_path_factory.mktemp("transparent") / "shop")
    mesh = Mesh(root)
    result = mesh.up("--transparent")
    state = podnet_state(root) if (root / ".plait" / "podnet.json").exists() else None
    try:
        assert result.returncode == 0, (
            f"plait up --transparent failed:\n{result.stdout}\n{result.stderr}\n"
            f"{mesh.diagnostics()}"
        )
        yield mesh
    finally:
        down = mesh.down()
        assert down.returncode == 0, down.stderr
        assert not processes_under(root), processes_under(root)
        assert not (root / ".plait" / "podnet.json").exists()
        if state is not None:
            cidrs = [state["podCidr"], state["serviceCidr"]]
            assert not leftovers(state["run"], cidrs)
        assert host_iptables() == before


def test_checkout_crosses_captured_sidecars_over_mtls_without_proxy_variables(
    shop: Mesh,
) -> None:
    reply = get_json(f"{shop.gateway}/checkout?item=book&payment=invoice", timeout=10)
    assert reply["checkout"] == "confirmed", reply
    hops = sidecars_crossed(reply)
    assert len({sidecar for sidecar, _ in hops}) >= 4, hops
    # every hop's caller is named by its certificate (XFCC exists only over mesh mTLS)
    assert all(peer.startswith("spiffe://cluster.local/ns/") for _, peer in hops), hops
    apps = 0
    for netns in netns_of(shop.root):
        for pid in pids_in(netns):
            env = environ(pid)
            if "PLAIT_INSTANCE" in env:  # the app (its sidecar's Envoy has no such variable)
                apps += 1
                assert not [v for v in PROXY_VARS if v in env], (netns, pid)
    assert apps == len(shop.status()["services"]) + 2  # orders ×2, reviews v1 + v2


def test_grpc_call_with_an_unmodified_client(shop: Mesh) -> None:
    reply = get_json(f"{shop.gateway}/product/book", timeout=10)
    grpc = [c for c in reply["calls"] if c["target"] == "recommendations"]
    assert grpc and grpc[0]["status"] == 200, reply
    assert reply["recommended"], reply


def test_the_tcp_cache_counts_views_through_the_mesh(shop: Mesh) -> None:
    """frontend → cache is plain TCP and server-first: captured, mTLS between the
    sidecars (the cache's ALLOW policy names frontend's principal), no sniffing wait."""

    def cache_call() -> dict[str, Any]:
        reply = get_json(f"{shop.gateway}/product/mug", timeout=10)
        (call,) = [c for c in reply["calls"] if c["target"] == "cache"]
        assert call["status"] == 200 and reply["views"] == call["response"]["value"], reply
        return dict(call)

    cache = next(p for p in shop.status()["proxies"] if p["workload"] == "cache")
    url = f"http://{cache['admin']}/stats?format=json&filter=^listener.0.0.0.0_15006.ssl.handshake$"
    before = get_json(url)["stats"][0]["value"]
    calls = [cache_call() for _ in range(5)]
    values = [c["response"]["value"] for c in calls]
    assert values == list(range(values[0], values[0] + 5)), values
    assert {c["response"]["instance"] for c in calls} == {"cache-0"}
    assert get_json(url)["stats"][0]["value"] - before >= 5
    assert sorted(c["elapsed_ms"] for c in calls)[2] < 80, calls


def test_status_shows_mode_pod_ips_and_cluster_ips_and_names_resolve_in_pods(
    shop: Mesh,
) -> None:
    status = shop.status()
    assert status["mode"] == "transparent"
    pods = netns_of(shop.root)
    sidecars = [p for p in status["proxies"] if p["kind"] == "sidecar"]
    assert sorted(p["podIP"] for p in sidecars) == sorted(pods.values())
    ips = {s["name"]: s["clusterIP"] for s in status["services"]}
    assert all(ips.values()), ips
    netns = next(iter(pods))
    for name in ("orders", "orders.default", "orders.default.svc.cluster.local"):
        got = run(["ip", "netns", "exec", netns, "getent", "hosts", name]).stdout.split()
        assert got[0] == ips["orders"], (name, got)


PLAIN_CLIENT = """
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
s.sendall(b"POST /charge HTTP/1.1\\r\\nHost: payment\\r\\nContent-Length: 2\\r\\n\\r\\n{}")
try:
    print(repr(s.recv(64)))
except ConnectionResetError:
    print(repr(b""))
"""


def test_strict_plaintext_to_a_pod_ip_never_reaches_the_app(shop: Mesh) -> None:
    """The shop is mesh-wide STRICT: plain text to payment's podIP:port, from the host
    or from another pod, is closed by payment's sidecar and never reaches the app, which
    does listen on that address (a call from inside its own pod, not captured, gets in)."""
    proxies = {p["workload"]: p for p in shop.status()["proxies"]}
    payment = proxies["payment"]
    host, port = payment["app"].rsplit(":", 1)
    by_ip = {ip: ns for ns, ip in netns_of(shop.root).items()}
    log = Path(payment["appLog"])

    def charges() -> int:
        return log.read_text(errors="replace").count('"POST /charge')

    def client(netns: str | None) -> str:
        argv = [sys.executable, "-c", PLAIN_CLIENT, host, port]
        if netns is not None:
            argv = ["ip", "netns", "exec", netns, *argv]
        return run(argv).stdout.strip()

    seen = charges()
    assert client(None) == "b''"  # from the host
    assert client(by_ip[proxies["frontend"]["podIP"]]) == "b''"  # from another pod
    assert charges() == seen
    # the app's own pod: the app's loopback traffic is not captured, so it gets in
    assert client(by_ip[payment["podIP"]]).startswith("b'HTTP/1.1")
    assert charges() == seen + 1


async def test_killing_a_sidecars_envoy_recovers_within_5s(shop: Mesh) -> None:
    pid = envoy_pid(shop.root, "payment-0.default")
    assert pid is not None
    os.kill(pid, signal.SIGKILL)

    def checkout_ok() -> bool:
        reply = get_json(f"{shop.gateway}/checkout?item=book&payment=invoice", timeout=2)
        return bool(reply.get("checkout") == "confirmed")

    took = await eventually(checkout_ok, 5.0, "a checkout through the restarted Envoy")
    assert envoy_pid(shop.root, "payment-0.default") not in (None, pid)
    print(f"recovered in {took:.2f}s")


def set_orders_replicas(mesh: Mesh, n: int) -> None:
    path = mesh.root / "deployments.yaml"
    lines = path.read_text().splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if line.startswith("  name: orders"))
    at = next(i for i in range(start, len(lines)) if lines[i].startswith("  replicas:"))
    lines[at] = f"  replicas: {n}\n"
    path.write_text("".join(lines))


def orders_pods(mesh: Mesh) -> set[str]:
    return {ns.rsplit("-default-", 1)[1] for ns in netns_of(mesh.root) if "-orders-" in ns}


async def test_scaling_a_deployment_under_traffic_loses_no_request(shop: Mesh) -> None:
    """A new replica gets its own pod and joins once ready; a leaving one gets no more
    traffic before its pod (namespace, veth, hosts file) is removed."""
    assert orders_pods(shop) == {"orders-0", "orders-1"}
    async with Load(f"{shop.gateway}/checkout?item=book&payment=card") as load:
        await eventually(lambda: load.count_since(0) >= 20, 10, "traffic to flow")
        set_orders_replicas(shop, 3)
        await eventually(lambda: "orders-2" in orders_pods(shop), 30, "a third pod")
        await eventually(
            lambda: any(p["name"] == "sidecar~orders-2.default" for p in shop.status_proxies()),
            30,
            "its sidecar in plait status",
        )
        t = time.monotonic()
        await eventually(lambda: load.count_since(t) >= 20, 10, "traffic after scaling up")
        set_orders_replicas(shop, 1)
        await eventually(lambda: orders_pods(shop) == {"orders-0"}, 30, "two pods removed")
        t = time.monotonic()
        await eventually(lambda: load.count_since(t) >= 20, 10, "traffic after scaling down")
    assert load.failures == [], f"{len(load.failures)} failed of {load.total}: {load.failures[:5]}"
    set_orders_replicas(shop, 2)  # as the other tests found it
    await eventually(lambda: len(orders_pods(shop)) == 2 and shop.all_synced(), 30, "2 again")


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


def test_a_failed_start_leaves_nothing(tmp_path: Path) -> None:
    before = host_iptables()
    root = copy_mesh(SHOP, tmp_path / "shop")
    (root / "broken.yaml").write_text(BROKEN_APP)
    result = plait(
        "up", str(root), "--transparent", "--detach", "--gateway-port", "0", "--timeout", "20"
    )
    assert result.returncode != 0, result.stdout
    log = (root / ".plait" / "up.log").read_text()
    assert "pod network" in log, log  # it did get as far as making pods
    assert not (root / ".plait" / "podnet.json").exists()
    assert not processes_under(root), processes_under(root)
    assert host_iptables() == before
    assert not [ns for ns in run(["ip", "netns", "list"]).stdout.split() if "-broken-0" in ns]


def test_ctrl_c_in_the_foreground_leaves_nothing(tmp_path: Path) -> None:
    before = host_iptables()
    root = copy_mesh(SHOP, tmp_path / "shop")
    proc = subprocess.Popen(
        [sys.executable, "-m", "plait", "up", str(root), "--transparent", "--gateway-port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    lines: list[str] = []
    state: dict[str, Any] | None = None
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 90
        for line in proc.stdout:
            lines.append(line)
            if "mesh ready" in line or time.monotonic() > deadline:
                break
        assert any("mesh ready" in line for line in lines), "".join(lines)
        state = podnet_state(root)
        assert leftovers(state["run"], [state["podCidr"]])  # the pods are there now
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
        lines.append(rest)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, "".join(lines)
    assert state is not None
    assert not leftovers(state["run"], [state["podCidr"], state["serviceCidr"]])
    assert not processes_under(root), processes_under(root)
    assert host_iptables() == before
