"""Per-pod hosts files: SERVICE only within the pod's namespace, the longer names anywhere."""

from __future__ import annotations

from ipaddress import IPv4Address

from plait.podnet.names import ServiceName, hosts_text, resolv_text


def test_hosts_name_services_as_kubernetes_dns_would() -> None:
    services = [
        ServiceName("reviews", "shop", IPv4Address("10.1.1.2")),
        ServiceName("db", "data", IPv4Address("10.1.1.1")),
    ]
    text = hosts_text("web-0", "shop", IPv4Address("10.1.0.2"), services)
    assert text.splitlines() == [
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        "10.1.0.2\tweb-0",
        "10.1.1.1\tdb.data.svc.cluster.local db.data",
        "10.1.1.2\treviews.shop.svc.cluster.local reviews.shop reviews",
    ]


def test_resolv_conf_has_the_search_path_and_no_nameserver() -> None:
    text = resolv_text("shop")
    assert "search shop.svc.cluster.local svc.cluster.local cluster.local\n" in text
    assert "nameserver" not in text.replace("no DNS server", "")


def test_service_entry_hosts_are_named_as_written_in_every_namespace() -> None:
    services = [
        ServiceName("api.example.com", "", IPv4Address("10.1.1.9"), host=True),
        ServiceName("db", "data", IPv4Address("10.1.1.1")),
    ]
    text = hosts_text("web-0", "shop", IPv4Address("10.1.0.2"), services)
    assert text.splitlines()[3:] == [
        "10.1.1.1\tdb.data.svc.cluster.local db.data",
        "10.1.1.9\tapi.example.com",
    ]
