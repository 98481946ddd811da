"""Per-pod hosts files: SERVICE only within the pod's namespace, the longer names anywhere."""

from __future__ import annotations

from ipaddress import IPv4Address

from plait.podnet.names import PodDns, ServiceName, hosts_text, resolv_text


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
        "10.1.1.1\tdb.data.svc.cluster.local db.data.svc db.data",
        "10.1.1.2\treviews.shop.svc.cluster.local reviews.shop.svc reviews.shop reviews",
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
        "10.1.1.1\tdb.data.svc.cluster.local db.data.svc db.data",
        "10.1.1.9\tapi.example.com",
    ]


def test_the_sidecars_hosts_file_has_no_service_entry_hosts() -> None:
    """Envoy resolves a DNS ServiceEntry through the pod's nameservers; the app's
    address for the host is served by its own capture only."""
    services = [
        ServiceName("api.example.com", "", IPv4Address("10.1.1.9"), host=True),
        ServiceName("db", "data", IPv4Address("10.1.1.1")),
    ]
    text = hosts_text("web-0", "shop", IPv4Address("10.1.0.2"), services, proxy=True)
    assert "api.example.com" not in text
    assert "10.1.1.1\tdb.data.svc.cluster.local db.data" in text


def test_dns_config_adds_to_the_cluster_policy_as_the_kubelet_does() -> None:
    dns = PodDns(
        nameservers=("10.0.0.10", "10.0.0.11"),
        searches=("corp.example",),
        options=(("ndots", "2"), ("edns0", None)),
    )
    assert resolv_text("shop", dns).splitlines()[1:] == [
        "nameserver 10.0.0.10",
        "nameserver 10.0.0.11",
        "search shop.svc.cluster.local svc.cluster.local cluster.local corp.example",
        "options ndots:2 edns0",
    ]


def test_dns_policy_none_uses_only_the_config_and_default_the_hosts() -> None:
    only = PodDns("None", ("10.0.0.10",))
    assert resolv_text("shop", only).splitlines()[1:] == ["nameserver 10.0.0.10"]
    host = "# host\nnameserver 10.9.9.9\nsearch lan\noptions timeout:1\n"
    default = PodDns("Default", ("10.0.0.10", "10.0.0.11", "10.0.0.12"))
    assert resolv_text("shop", default, host).splitlines()[1:] == [
        "nameserver 10.9.9.9",
        "nameserver 10.0.0.10",
        "nameserver 10.0.0.11",  # three at most, as glibc reads
        "search lan",
        "options timeout:1",
    ]
