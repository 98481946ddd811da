"""Pod networks for real: pods reach each other by IP, services resolve by name inside
pods (also for processes already running), parallel runs do not collide, and teardown
from the state file leaves the host as it was, even after the creating process was
killed mid-way."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from capturekit import PYTHON, ROOT_ONLY, Procs, connect, host_snapshot, run, start_echo, wait_for

from plait.podnet import PodNetwork, teardown

pytestmark = ROOT_ONLY


def test_pods_talk_and_resolve_services_by_kubernetes_names(tmp_path: Path) -> None:
    before = host_snapshot()
    procs = Procs()
    net = PodNetwork.create(tmp_path / "podnet.json")
    try:
        web = net.add_pod("web-0", "shop")
        db = net.add_pod("db-0", "data")
        start_echo(procs, db, tmp_path, 5432)
        assert connect(web, db.ip, 5432) == f"5432 {web.ip} hi"
        # a process started before the service exists sees it once it is added
        watcher = tmp_path / "watch.out"
        script = (
            "import socket, time, sys\n"
            "while True:\n"
            "    try: print(socket.gethostbyname('late.shop')); break\n"
            "    except OSError: time.sleep(0.05)\n"
        )
        procs.start(web.exec_argv([PYTHON, "-c", script]), watcher)
        ip = net.add_service("reviews", "shop")
        late = net.add_service("late", "shop")
        assert ip in net.service_cidr and ip != late
        wait_for(
            "the running process to resolve late.shop", lambda: watcher.read_text().strip() or None
        )
        assert watcher.read_text().strip() == str(late)
        for pod, name in [(web, "reviews"), (web, "reviews.shop"), (db, "reviews.shop"),
                          (db, "reviews.shop.svc.cluster.local")]:  # fmt: skip
            assert run(pod.exec_argv(["getent", "hosts", name])).stdout.split()[0] == str(ip)
        assert run(db.exec_argv(["getent", "hosts", "reviews"]), check=False).returncode != 0
    finally:
        procs.stop()
        net.close()
    assert host_snapshot() == before


def test_parallel_runs_get_their_own_names_and_ranges(tmp_path: Path) -> None:
    before = host_snapshot()
    one = PodNetwork.create(tmp_path / "one.json")
    try:
        two = PodNetwork.create(tmp_path / "two.json")
        try:
            a, b = one.add_pod("same"), two.add_pod("same")
            assert a.netns != b.netns and one.bridge != two.bridge
            ranges = {one.pod_cidr, one.service_cidr, two.pod_cidr, two.service_cidr}
            assert len(ranges) == 4
            assert not any(x.overlaps(y) for x in ranges for y in ranges if x != y)
        finally:
            two.close()
    finally:
        one.close()
    assert host_snapshot() == before


MAKER = """
import subprocess, sys
from pathlib import Path
from plait.podnet import PodNetwork
net = PodNetwork.create(Path(sys.argv[1]))
pod = net.add_pod("a")
net.add_pod("b")
net.add_service("svc")
sleeper = subprocess.Popen(pod.exec_argv(["sleep", "300"]))
print(sleeper.pid, flush=True)
sys.stdin.read()  # killed here, with everything in place
"""


def test_teardown_from_the_state_file_after_a_crash(tmp_path: Path) -> None:
    before = host_snapshot()
    state = tmp_path / "podnet.json"
    maker = subprocess.Popen(
        [sys.executable, "-c", MAKER, str(state)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert maker.stdout is not None
        sleeper = int(maker.stdout.readline())
        maker.send_signal(signal.SIGKILL)
        maker.wait(timeout=10)
        assert host_snapshot() != before  # the crash left the network behind
        removed = teardown(state)
        assert any(r.startswith("netns plait-") for r in removed)
        assert any(r.startswith("bridge plb") for r in removed)
    finally:
        if maker.poll() is None:
            maker.kill()
            maker.wait(timeout=10)
        teardown(state)
    assert not state.exists()
    assert host_snapshot() == before
    assert not Path(f"/proc/{sleeper}").exists() or _zombie(sleeper)
    assert teardown(state) == []  # a second teardown finds nothing to do


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True


def test_removing_a_pod_removes_all_of_it_and_frees_its_ip(tmp_path: Path) -> None:
    before = host_snapshot()
    procs = Procs()
    net = PodNetwork.create(tmp_path / "podnet.json")
    try:
        web, old = net.add_pod("web"), net.add_pod("old")
        net.add_service("cart")
        sleeper = procs.start(old.exec_argv(["sleep", "300"]), tmp_path / "sleep.log")
        net.remove_pod(old)
        assert sleeper.wait(timeout=10) == -9  # killed with its pod
        assert old.netns not in run(["ip", "netns", "list"]).stdout
        assert not Path("/sys/class/net", old.host_veth).exists()
        assert not Path("/etc/netns", old.netns).exists()
        new = net.add_pod("new")
        # not handed on at once (host-local IPAM's order); the wrap-around is a unit test
        assert new.ip != old.ip and new.host_veth != old.host_veth
        start_echo(procs, new, tmp_path, 9000)
        assert connect(web, new.ip, 9000) == f"9000 {web.ip} hi"
        net.remove_service("cart")
        assert run(web.exec_argv(["getent", "hosts", "cart"]), check=False).returncode != 0
    finally:
        procs.stop()
        net.close()
    assert host_snapshot() == before
