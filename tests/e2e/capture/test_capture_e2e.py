"""`plait capture apply` in a pod: a real Envoy on 15001/15006 receives the app's
outbound TCP and the pod's inbound TCP, while the proxy's own UID, excluded ports and
excluded CIDRs bypass it; `plait capture remove` undoes it.

Captured or not is read from Envoy's own counters (a connection Envoy accepted raises
`listener.0.0.0.0_15001.downstream_cx_total` before the client gets its reply) and its
access log (the original destination); the echo app's reply names the peer it saw.
"""

from __future__ import annotations

import sys

import pytest
from capturekit import ADMIN_PORT, PROXY_UID, ROOT_ONLY, Pods, connect, run, wait_for

from plait.podnet import Pod

OUT = "listener.0.0.0.0_15001.downstream_cx_total"
IN = "listener.0.0.0.0_15006.downstream_cx_total"
P = "traffic.sidecar.istio.io/"

pytestmark = ROOT_ONLY


def capture(pod: Pod, *args: str) -> str:
    argv = [sys.executable, "-m", "plait", "capture", *args]
    return run(pod.exec_argv(argv)).stdout


@pytest.fixture(autouse=True)
def captured(pods: Pods) -> None:
    capture(
        pods.app,
        "apply",
        "--proxy-port", str(ADMIN_PORT),
        "-a", f"{P}excludeOutboundPorts=9001",
        "-a", f"{P}excludeOutboundIPRanges={pods.other.ip}/32",
    )  # fmt: skip


def test_the_apps_outbound_tcp_goes_through_envoy(pods: Pods) -> None:
    before = pods.envoy.stat(OUT)
    reply = connect(pods.app, pods.server.ip, 9000)
    assert reply == f"9000 {pods.app.ip} hi"
    assert pods.envoy.stat(OUT) == before + 1
    target = f"{pods.server.ip}:9000"
    entry = wait_for(
        f"an outbound access log entry for {target}",
        lambda: next((e for e in pods.envoy.access_entries() if e["original_dst"] == target), None),
    )
    assert (entry["listener"], entry["upstream"]) == ("outbound", target)


def test_the_proxys_own_uid_is_not_captured(pods: Pods) -> None:
    before = pods.envoy.stat(OUT)
    assert connect(pods.app, pods.server.ip, 9000, uid=PROXY_UID) == f"9000 {pods.app.ip} hi"
    assert pods.envoy.stat(OUT) == before


def test_an_excluded_port_bypasses_envoy(pods: Pods) -> None:
    before = pods.envoy.stat(OUT)
    assert connect(pods.app, pods.server.ip, 9001) == f"9001 {pods.app.ip} hi"
    assert pods.envoy.stat(OUT) == before
    connect(pods.app, pods.server.ip, 9000)
    assert pods.envoy.stat(OUT) == before + 1  # the same pod on another port is captured


def test_an_excluded_cidr_bypasses_envoy(pods: Pods) -> None:
    before = pods.envoy.stat(OUT)
    assert connect(pods.app, pods.other.ip, 9000) == f"9000 {pods.app.ip} hi"
    assert pods.envoy.stat(OUT) == before


def test_inbound_tcp_reaches_the_app_through_15006(pods: Pods) -> None:
    before = pods.envoy.stat(IN)
    # the app sees Envoy's inbound passthrough address, not the caller's
    assert connect(pods.server, pods.app.ip, 8080) == "8080 127.0.0.6 hi"
    assert pods.envoy.stat(IN) == before + 1


def test_the_proxys_own_ports_are_not_captured_inbound(pods: Pods) -> None:
    before = pods.envoy.stat(IN)
    assert pods.envoy.admin("/ready").strip() == "LIVE"
    assert pods.envoy.stat(IN) == before


def test_apply_replaces_and_remove_undoes(pods: Pods) -> None:
    capture(pods.app, "apply", "--proxy-port", str(ADMIN_PORT))  # again: no duplicates
    saved = run(pods.app.exec_argv(["iptables-save", "-t", "nat"])).stdout
    assert saved.count("-A OUTPUT -j ISTIO_OUTPUT") == 1
    assert "--dport 9001" not in saved  # the new settings replaced the old
    assert "capture: rules removed" in capture(pods.app, "remove")
    saved = run(pods.app.exec_argv(["iptables-save", "-t", "nat"])).stdout
    assert "ISTIO" not in saved
    before_out, before_in = pods.envoy.stat(OUT), pods.envoy.stat(IN)
    assert connect(pods.app, pods.server.ip, 9000) == f"9000 {pods.app.ip} hi"
    assert connect(pods.server, pods.app.ip, 8080) == f"8080 {pods.server.ip} hi"
    assert (pods.envoy.stat(OUT), pods.envoy.stat(IN)) == (before_out, before_in)
