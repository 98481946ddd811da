"""`plait proxy-status` and `plait proxy-config` against the real Envoys of a running lab
mesh, and a NACK forced for real.

The NACK: plait never pushes config it knows to be invalid, so the test applies a
VirtualService that plait accepts and Envoy refuses. Envoy reads header values added by a
route as substitution formats (`%REQ(x)%`); a well-formed but unknown command
(`x-discount: %DISCOUNT%`) is refused ("Not supported field in StreamInfo"). Istio's
validation and plait's check only the format (a lone `%` is an `analyze` error), not the
command names. Every sidecar NACKs the route configuration, keeps serving its last good
one, and `plait proxy-status` shows the NACK with Envoy's text.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Any

import yaml
from labkit import Lab, statuses
from meshkit import plait

ECHO_CLUSTER = "outbound|8080||echo.default.svc.cluster.local"
TYPES = ("cds", "lds", "eds", "rds")
REJECTED_BY_ENVOY = """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo-discount}
spec:
  hosts: [echo]
  http:
    - headers:
        request:
          set: {x-discount: "%DISCOUNT%"}
      route:
        - destination: {host: echo}
"""


def run(lab: Lab, *args: str) -> tuple[int, str]:
    """`plait ARGS...` with the lab's directory where the command wants it (last)."""
    result = plait(*args, str(lab.mesh.root))
    return result.returncode, result.stdout + result.stderr


def row(text: str, needle: str) -> str:
    found = [line for line in text.splitlines() if needle in line]
    assert found, f"no line with {needle!r} in:\n{text}"
    return found[0]


def proxy_names(lab: Lab) -> set[str]:
    return {str(p["name"]) for p in lab.mesh.status_proxies()}


def test_proxy_status_shows_every_proxy_synced_for_every_type(lab: Lab) -> None:
    code, out = run(lab, "proxy-status", "-o", "json")
    assert code == 0, out
    data = json.loads(out)
    rows = {r["name"]: r for r in data["proxies"]}
    assert set(rows) == proxy_names(lab)
    generation = lab.mesh.cp_status()["controlPlane"]["generation"]
    for name, r in rows.items():
        assert r["sync"] == dict.fromkeys(TYPES, "SYNCED"), name
        assert r["connected"] and r["nack"] is None and r["generation"] == generation
        assert re.fullmatch(r"\d+\.\d+\.\d+", r["envoy"] or ""), r
    assert data["inSync"] is True

    code, out = run(lab, "proxy-status")
    assert code == 0, out
    for name in rows:
        assert row(out, name).count("SYNCED") == 4


def test_proxy_config_cluster_lists_echo_with_mtls(lab: Lab) -> None:
    code, out = run(lab, "proxy-config", "cluster", "client-0")
    assert code == 0, out
    echo = row(out, f"{ECHO_CLUSTER} ")
    assert "mTLS" in echo and "EDS (3)" in echo  # echo-v1 ×2, echo-v2 ×1

    code, out = run(lab, "proxy-config", "cluster", "client-0", "-o", "json")
    assert code == 0, out
    clusters = {
        c["cluster"]["name"]: c["cluster"] for c in json.loads(out)["dynamic_active_clusters"]
    }
    assert clusters[ECHO_CLUSTER]["transport_socket_matches"][0]["match"] == {"tlsMode": "istio"}


def test_proxy_config_secret_shows_the_workload_certificate_and_the_root(lab: Lab) -> None:
    code, out = run(lab, "proxy-config", "secret", "client-0")
    assert code == 0, out
    default = row(out, "default  ")  # the secret named default
    assert "spiffe://cluster.local/ns/default/sa/client" in default
    assert "ACTIVE " in default and "yes" in default  # Envoy's TLS contexts hold it, valid
    assert "CA bundle" in row(out, "ROOTCA")

    code, out = run(lab, "proxy-config", "secret", "client-0", "-o", "json")
    assert code == 0, out
    secrets = {s["name"]: s["secret"] for s in json.loads(out)["dynamic_active_secrets"]}
    assert set(secrets) >= {"default", "ROOTCA"}
    assert secrets["default"]["tls_certificate"]["private_key"] == "[redacted]"


def test_proxy_config_route_shows_echos_routes(lab: Lab) -> None:
    code, out = run(lab, "proxy-config", "route", "client-0")
    assert code == 0, out
    echo = row(out, "echo.default.svc.cluster.local:8080 ")
    assert "echo:8080" in echo and ECHO_CLUSTER in echo and "outbound" in echo

    code, out = run(lab, "proxy-config", "route", "client-0", "-o", "yaml")
    assert code == 0, out
    names = [r["route_config"]["name"] for r in yaml.safe_load(out)["dynamic_route_configs"]]
    assert "outbound" in names


def test_proxy_config_endpoint_shows_each_echo_replica_healthy_with_mtls(lab: Lab) -> None:
    code, out = run(lab, "proxy-config", "endpoint", "client-0")
    assert code == 0, out
    replicas = lab.replicas("echo-v1") + lab.replicas("echo-v2")
    assert len(replicas) == 3
    rows = [line for line in out.splitlines() if ECHO_CLUSTER in line]
    for replica in replicas:
        (line,) = [r for r in rows if r.split()[0] == replica["inbound"]]  # first column
        assert "HEALTHY" in line and "istio" in line


def test_proxy_config_listener_and_bootstrap(lab: Lab) -> None:
    client = lab.proxy("client")
    code, out = run(lab, "proxy-config", "listener", "sidecar~client-0.default")
    assert code == 0, out
    mtls_chain = row(out, "inbound-mtls")
    assert client["inbound"] in mtls_chain and "transport_protocol=tls" in mtls_chain

    code, out = run(lab, "proxy-config", "bootstrap", "client")  # a workload of one replica
    assert code == 0, out
    assert "sidecar~client-0.default" in row(out, "node id")
    assert lab.mesh.status()["controlPlane"]["xds"] in row(out, "xDS")


def test_a_name_with_several_proxies_is_refused_with_the_candidates(lab: Lab) -> None:
    code, out = run(lab, "proxy-config", "cluster", "echo-v1")
    assert code == 2
    assert "sidecar~echo-v1-0.default" in out and "sidecar~echo-v1-1.default" in out


def _nacked(lab: Lab) -> dict[str, Any]:
    proxies = {p["name"]: p for p in lab.mesh.cp_status()["proxies"]}
    return {n: p for n, p in proxies.items() if p["sync"].get("rds") == "NACK"}


async def test_a_config_envoy_rejects_shows_as_nack_with_envoys_error(lab: Lab) -> None:
    path = lab.mesh.root / "discount.yaml"
    path.write_text(REJECTED_BY_ENVOY)
    try:
        deadline = time.monotonic() + 20
        while "sidecar~client-0.default" not in _nacked(lab):
            assert time.monotonic() < deadline, f"no NACK in 20 s: {lab.mesh.cp_status()}"
            await asyncio.sleep(0.05)
        assert lab.errors() == [], (
            "plait now rejects this VirtualService itself (good): choose another config "
            f"Envoy refuses but plait passes, or test NACK display another way: {lab.errors()}"
        )

        code, out = run(lab, "proxy-status")
        assert code == 5, out
        assert "NACK" in row(out, "sidecar~client-0.default")
        flat = " ".join(out.split())
        assert "rejected by Envoy (NACK)" in flat
        assert "Not supported field in StreamInfo: DISCOUNT" in flat  # Envoy's own words

        code, out = run(lab, "proxy-status", "-o", "json")
        assert code == 5, out
        client = next(
            p for p in json.loads(out)["proxies"] if p["name"] == "sidecar~client-0.default"
        )
        assert client["sync"]["rds"] == "NACK" and client["sync"]["cds"] == "SYNCED"
        assert "DISCOUNT" in client["nack"] and not client["inSync"]

        # the NACKed proxy keeps its last good routes: traffic to echo still flows
        assert statuses(await lab.send("http://echo:8080/", 3)) == {200: 3}
    finally:
        lab.remove("discount")  # waits until every proxy ACKs the config without it

    code, out = run(lab, "proxy-status")
    assert code == 0, out
