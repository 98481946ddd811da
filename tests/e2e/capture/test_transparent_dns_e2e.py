"""A ServiceEntry with `resolution: DNS` reached from a pod under `plait up --transparent`
(root only, `dnsmesh/`): the app's name for the host is an address its sidecar listens
at (Istio's DNS proxy with auto-allocation), while the sidecar's egress cluster resolves
the host by DNS through the pod's nameserver (the Deployment's `dnsConfig`), never
through the app's answer, and connects to the server that DNS names."""

from __future__ import annotations

import ipaddress
import json
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from capturekit import ROOT_ONLY, run
from meshkit import Mesh, eventually
from podmesh import diagnose_on_failure, pod_netns, stats, transparent_mesh

pytestmark = [ROOT_ONLY]

MESH = Path(__file__).parent / "dnsmesh"
HOST = "legacy.example.com"
CLUSTER = f"outbound|9000||{HOST}"

GREETING = r"""
import socket, sys
try:
    with socket.create_connection((sys.argv[1], 9000), timeout=5) as s:
        print(s.makefile("rb").readline().decode().strip())
except OSError as exc:
    print(repr(exc))
"""


@pytest.fixture(scope="module")
def dns_mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    dst = tmp_path_factory.mktemp("dns") / "mesh"
    with transparent_mesh(MESH, dst, lambda root: (root / "dns").mkdir()) as mesh:
        (mesh.root / "dns" / "zone.json").write_text(json.dumps({HOST: legacy_ip(mesh)}))
        yield mesh


@pytest.fixture(autouse=True)
def _mesh_diagnostics(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    diagnose_on_failure(request, "dns_mesh")


def legacy_ip(mesh: Mesh) -> str:
    """The pod IP of `legacy` (no sidecar, so not among the proxies)."""
    argv = ["ip", "netns", "exec", pod_netns(mesh.root, "legacy-0"), "ip", "-4", "-o", "addr"]
    line = next(x for x in run([*argv, "show", "eth0"]).stdout.splitlines() if " inet " in x)
    return line.split(" inet ", 1)[1].split("/", 1)[0]


def in_client(mesh: Mesh, *argv: str) -> str:
    netns = pod_netns(mesh.root, "client-0")
    return run(["ip", "netns", "exec", netns, *argv]).stdout.strip()


def cluster_hosts(mesh: Mesh) -> set[str]:
    """The addresses the client's Envoy resolved the ServiceEntry's cluster to."""
    admin = next(p["admin"] for p in mesh.status_proxies() if p["workload"] == "client")
    with urllib.request.urlopen(f"http://{admin}/clusters", timeout=5) as resp:
        lines = resp.read().decode().splitlines()
    return {line.split("::")[1] for line in lines if line.startswith(f"{CLUSTER}::")} - {
        "observability_name",
        "default_priority",
        "high_priority",
        "added_via_api",
        "outlier",
    }


async def test_the_egress_cluster_resolves_the_host_by_dns_and_reaches_its_server(
    dns_mesh: Mesh,
) -> None:
    state = json.loads((dns_mesh.root / ".plait" / "podnet.json").read_text())
    legacy = legacy_ip(dns_mesh)
    # the app's name for the host: an address of the service range, where its sidecar listens
    address = in_client(dns_mesh, "getent", "hosts", HOST).split()[0]
    assert ipaddress.ip_address(address) in ipaddress.ip_network(state["serviceCidr"])
    # the sidecar's cluster: the server's own address, from the pod's nameserver
    await eventually(
        lambda: cluster_hosts(dns_mesh) == {f"{legacy}:9000"},
        20,
        f"the client's Envoy to resolve {HOST} to {legacy} (hosts: {cluster_hosts(dns_mesh)})",
    )
    queries = (dns_mesh.root / "dns" / "queries.log").read_text().split()
    assert HOST in queries, queries  # asked by DNS, not read from the app's hosts file
    before = stats(
        dns_mesh, "client", rf"^cluster\.{CLUSTER}\.upstream_cx_total$".replace("|", r"\|")
    )
    greeting = in_client(dns_mesh, sys.executable, "-c", GREETING, HOST)
    assert greeting == "HELLO legacy-0", greeting
    after = stats(
        dns_mesh, "client", rf"^cluster\.{CLUSTER}\.upstream_cx_total$".replace("|", r"\|")
    )
    assert sum(after.values()) == sum(before.values()) + 1, (before, after)
