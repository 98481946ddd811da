"""Transparent mode's pod helpers that need no root: which services get a cluster IP,
how Envoy is run in a pod, and reading a namespace's listening sockets from /proc."""

from __future__ import annotations

import os
import socket
from dataclasses import replace
from ipaddress import IPv4Address
from pathlib import Path

from plait.local.pods import envoy_wrapper, listens, meshed
from plait.model.registry import Resolution, Service
from plait.podnet import Pod


def test_only_kubernetes_services_get_cluster_ips() -> None:
    svc = Service("a.default.svc.cluster.local", "a", "default", ())
    entry = Service("api.example.com", "api.example.com", "default", (), external=True)
    dns = Service("b.default.svc.cluster.local", "b", "default", (), resolution=Resolution.DNS)
    assert meshed([svc, entry, dns]) == [svc]
    headless = replace(svc, hostname="h.default.svc.cluster.local", name="h", headless=True)
    assert meshed([svc, headless]) == [svc]  # `clusterIP: None`: reached at its pods' IPs


def test_envoy_runs_in_the_pod_with_the_proxy_gid_and_roots_uid() -> None:
    pod = Pod("web-0", "default", "plait-abc-default-web-0", IPv4Address("10.1.0.2"), "plv1")
    assert envoy_wrapper(pod) == (
        "ip", "netns", "exec", "plait-abc-default-web-0", "setpriv", "--regid=1337", "--clear-groups",
    )  # fmt: skip


def test_envoy_gets_the_sidecars_hosts_file_mounted_over_the_pods() -> None:
    hosts = Path("/run/x/proxy-etc/plait-abc-default-web-0/hosts")
    pod = Pod("web-0", "default", "plait-abc-default-web-0", IPv4Address("10.1.0.2"), "plv1")
    pod = replace(pod, proxy_hosts=hosts)
    assert envoy_wrapper(pod) == (
        "ip", "netns", "exec", "plait-abc-default-web-0",
        "sh", "-c", 'mount --bind "$0" /etc/hosts && exec "$@"', str(hosts),
        "setpriv", "--regid=1337", "--clear-groups",
    )  # fmt: skip


def test_listens_reads_the_namespaces_socket_table() -> None:
    with socket.socket() as server:
        server.bind(("0.0.0.0", 0))
        port = server.getsockname()[1]
        assert not listens(os.getpid(), port)  # bound, not listening
        server.listen()
        assert listens(os.getpid(), port)
    assert not listens(os.getpid(), port)
    assert not listens(None, port)


def test_service_entry_hosts_get_addresses_but_wildcards_do_not() -> None:
    from plait.local.pods import entry_hosts

    svc = Service("a.default.svc.cluster.local", "a", "default", ())
    entry = Service("api.example.com", "api.example.com", "default", (), external=True)
    wild = Service("*.example.com", "*.example.com", "default", (), external=True)
    assert entry_hosts([svc, entry, wild]) == [entry]
