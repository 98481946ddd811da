"""The test node's kube-proxy rules (tests/kubenodeports.py): which Service ports and
endpoints it serves, and kube-proxy's chain shape with 1/(n-i) probabilities, accepted by
the real iptables-restore (as root; `--test` changes nothing)."""

from __future__ import annotations

import os
import subprocess
from ipaddress import IPv4Address
from typing import Any

import pytest
from lightkube.resources.core_v1 import Service
from lightkube.resources.discovery_v1 import EndpointSlice

from kubenodeports import (
    MAX_CHAIN,
    Endpoint,
    NodePort,
    Rules,
    chain,
    endpoints,
    node_ports,
    probability,
    rules,
)

RUN = "a1b2c3"
NODE = IPv4Address("10.200.7.1")


def service(kind: str, *ports: dict[str, Any]) -> Service:
    return Service.from_dict(
        {"metadata": {"name": "gw", "namespace": "istio-system"},
         "spec": {"type": kind, "ports": list(ports)}}
    )  # fmt: skip


def endpoint_slice(*eps: tuple[str, dict[str, bool] | None], port: str = "http2") -> EndpointSlice:
    return EndpointSlice.from_dict(
        {"metadata": {"name": "gw-x", "namespace": "istio-system",
                      "labels": {"kubernetes.io/service-name": "gw"}},
         "addressType": "IPv4",
         "endpoints": [{"addresses": [ip], **({"conditions": c} if c is not None else {})}
                       for ip, c in eps],
         "ports": [{"name": port, "port": 8080, "protocol": "TCP"},
                   {"name": "status-port", "port": 15021, "protocol": "TCP"}]}
    )  # fmt: skip


def test_nodeport_and_loadbalancer_services_are_served_clusterip_not() -> None:
    ports = [
        {"name": "http2", "port": 80, "nodePort": 30080},
        {"name": "dns", "port": 53, "nodePort": 30053, "protocol": "UDP"},
        {"name": "none", "port": 81},
    ]
    want = [NodePort("istio-system", "gw", "http2", 30080)]
    assert node_ports(service("NodePort", *ports)) == want
    assert node_ports(service("LoadBalancer", *ports)) == want
    assert node_ports(service("ClusterIP", {"name": "http2", "port": 80})) == []
    assert str(want[0]) == "istio-system/gw:http2"  # kube-proxy's ServicePortName


def test_ready_endpoints_at_the_named_port_else_serving_terminating_ones() -> None:
    ready = endpoint_slice(
        ("10.0.0.3", {"ready": True}),
        ("10.0.0.2", None),  # no conditions: ready
        ("10.0.0.4", {"ready": False, "serving": True, "terminating": True}),
        ("10.0.0.5", {"ready": False}),
    )
    assert endpoints([ready], "http2") == [Endpoint("10.0.0.2", 8080), Endpoint("10.0.0.3", 8080)]
    assert endpoints([ready], "status-port")[0] == Endpoint("10.0.0.2", 15021)
    assert endpoints([ready], "https") == []
    draining = endpoint_slice(
        ("10.0.0.4", {"ready": False, "serving": True, "terminating": True}),
        ("10.0.0.6", {"ready": False, "serving": False, "terminating": True}),
    )
    assert endpoints([draining], "http2") == [Endpoint("10.0.0.4", 8080)]


def test_chain_names_fit_iptables_and_carry_the_run() -> None:
    names = [chain(RUN, "SERVICES"), chain(RUN, "SVC", "ns/a:http", "tcp"),
             chain(RUN, "SEP", "ns/a:http", "tcp", "10.0.0.2:8080")]  # fmt: skip
    assert all(len(n) <= MAX_CHAIN and n.startswith(f"PLAIT{RUN}-") for n in names)
    assert chain(RUN, "SVC", "ns/a:http", "tcp") != chain(RUN, "SVC", "ns/b:http", "tcp")
    assert chain(RUN, "SVC", "x") != chain("d4e5f6", "SVC", "x")


def test_each_of_n_endpoints_gets_one_nth_as_kube_proxy_writes_it() -> None:
    port = NodePort("istio-system", "gw", "http2", 30080)
    eps = [Endpoint(f"10.0.0.{i}", 8080) for i in (2, 3, 4)]
    made = rules(RUN, NODE, {port: eps})
    svc = chain(RUN, "SVC", str(port), "tcp")
    jumps = [r for r in made.rules if r.startswith(f"-A {svc} ")]
    assert [j.partition("--probability ")[2].split()[0] if "statistic" in j else None
            for j in jumps] == [probability(3), probability(2), None]  # fmt: skip
    assert probability(3) == "0.3333333333"
    # 1/3, then 1/2 of the rest, then the rest: each endpoint 1/3
    dnat = [r.rpartition("--to-destination ")[2] for r in made.rules if "DNAT" in r]
    assert dnat == ["10.0.0.2:8080", "10.0.0.3:8080", "10.0.0.4:8080"]
    nodeports = chain(RUN, "NODEPORTS")
    assert any(f"-d {NODE}/32 -j {nodeports}" in r for r in made.rules)
    assert any(r.startswith(f"-A {nodeports} ") and "--dport 30080" in r for r in made.rules)
    # a port without endpoints gets no rule (the host refuses the connection)
    assert rules(RUN, NODE, {port: []}).chains == (chain(RUN, "SERVICES"), nodeports)


def test_restore_flushes_its_chains_and_deletes_stale_ones() -> None:
    port = NodePort("istio-system", "gw", "http2", 30080)
    before = rules(RUN, NODE, {port: [Endpoint("10.0.0.2", 8080)]})
    after = rules(RUN, NODE, {port: [Endpoint("10.0.0.3", 8080)]})
    text = after.restore(stale=before.chains)
    old_sep = chain(RUN, "SEP", str(port), "tcp", "10.0.0.2:8080")
    assert f":{old_sep} - [0:0]" in text and f"-X {old_sep}" in text
    assert f"-X {chain(RUN, 'SVC', str(port), 'tcp')}" not in text  # kept, refilled
    assert text.startswith("*nat\n") and text.endswith("COMMIT\n")
    assert Rules((), ()).restore() == "*nat\nCOMMIT\n"


@pytest.mark.skipif(os.geteuid() != 0, reason="iptables-restore --test needs root")
def test_iptables_restore_accepts_the_rules() -> None:
    port = NodePort("istio-system", "gw", "http2", 30080)
    made = rules(RUN, NODE, {port: [Endpoint("10.0.0.2", 8080), Endpoint("10.0.0.3", 8080)]})
    done = subprocess.run(
        ["iptables-restore", "-w", "--noflush", "--test"],
        input=made.restore(), capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
