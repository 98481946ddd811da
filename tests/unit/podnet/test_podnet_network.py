"""Network namespace names (unique per pod even when pod names are long) and pod address
allocation (`PodNetwork._free_ip`): round robin over the pod range, as CNI's host-local
IPAM does, so a freed address is not handed on at once but comes back round."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from plait.podnet.network import Pod, PodNetwork, _slug
from plait.podnet.state import StateFile


def network(tmp_path: Path) -> PodNetwork:
    state = StateFile(tmp_path / "podnet.json", "abc123")
    return PodNetwork(
        state=state,
        bridge="plbabc123",
        pod_cidr=IPv4Network("10.9.0.0/29"),  # hosts .1-.6; .1 is the bridge (gateway)
        service_cidr=IPv4Network("10.9.1.0/24"),
    )


def take(net: PodNetwork, name: str) -> Pod:
    ip = net._free_ip()
    pod = Pod(name, "default", f"ns-{name}", ip, f"veth-{name}")
    net.pods[pod.netns] = pod
    return pod


def test_a_freed_address_is_not_handed_on_at_once_but_comes_back_round(tmp_path: Path) -> None:
    net = network(tmp_path)
    a, b = take(net, "a"), take(net, "b")
    assert (a.ip, b.ip) == (IPv4Address("10.9.0.2"), IPv4Address("10.9.0.3"))
    del net.pods[a.netns]
    c = take(net, "c")
    assert c.ip == IPv4Address("10.9.0.4")  # not a's address, freed just now
    d, e = take(net, "d"), take(net, "e")
    assert (d.ip, e.ip) == (IPv4Address("10.9.0.5"), IPv4Address("10.9.0.6"))
    assert take(net, "f").ip == a.ip  # wrapped round: the gateway and used ones skipped


def test_long_pod_names_sharing_a_prefix_get_different_slugs() -> None:
    a = _slug("istio-ingressgateway-594db467b5-2k8k9")
    b = _slug("istio-ingressgateway-594db467b5-mtjd6")
    assert a != b and len(a) == len(b) == 30 and a.startswith("istio-ingressgateway-59")
    assert _slug("reviews-v1-6445d9c96f-mhn4p") == "reviews-v1-6445d9c96f-mhn4p"
