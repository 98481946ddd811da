"""The capture rule sets as data: Istio's chain layout, order and include/exclude semantics."""

from __future__ import annotations

from ipaddress import IPv4Network

from plait.capture.rules import (
    CHAINS,
    capture_rules,
    installed_chains,
    removal_lines,
    removal_text,
)
from plait.capture.settings import CaptureSettings


def _lines(settings: CaptureSettings) -> list[str]:
    return [rule.line() for rule in capture_rules(settings).rules]


def test_defaults_capture_all_tcp_and_exempt_the_proxy_by_uid_and_gid() -> None:
    assert _lines(CaptureSettings(proxy_ports=(15000, 15090))) == [
        "-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001",
        "-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006",
        "-A PREROUTING -p tcp -j ISTIO_INBOUND",
        "-A ISTIO_INBOUND -p tcp -m multiport --dports 15000,15090 -j RETURN",
        "-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT",
        "-A OUTPUT -j ISTIO_OUTPUT",
        "-A ISTIO_OUTPUT -o lo -s 127.0.0.6/32 -j RETURN",
        "-A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp -m owner --uid-owner 1337 -j ISTIO_IN_REDIRECT",
        "-A ISTIO_OUTPUT -o lo -m owner ! --uid-owner 1337 -j RETURN",
        "-A ISTIO_OUTPUT -m owner --uid-owner 1337 -j RETURN",
        "-A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp -m owner --gid-owner 1337 -j ISTIO_IN_REDIRECT",
        "-A ISTIO_OUTPUT -o lo -m owner ! --gid-owner 1337 -j RETURN",
        "-A ISTIO_OUTPUT -m owner --gid-owner 1337 -j RETURN",
        "-A ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN",
        "-A ISTIO_OUTPUT -j ISTIO_REDIRECT",
    ]


def test_restore_text_declares_the_four_chains_then_the_rules() -> None:
    text = capture_rules(CaptureSettings()).restore_text()
    lines = text.splitlines()
    assert lines[0] == "*nat" and lines[-1] == "COMMIT" and text.endswith("\n")
    assert lines[1:5] == [f":{c} - [0:0]" for c in CHAINS]
    assert CHAINS == ("ISTIO_INBOUND", "ISTIO_REDIRECT", "ISTIO_IN_REDIRECT", "ISTIO_OUTPUT")


def test_ports_and_uid_are_the_settings() -> None:
    s = CaptureSettings(
        proxy_uid=2000, proxy_gid=2001, outbound_capture_port=16001, inbound_capture_port=16006
    )
    lines = _lines(s)
    assert "-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 16001" in lines
    assert "-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 16006" in lines
    assert "-A ISTIO_OUTPUT -m owner --uid-owner 2000 -j RETURN" in lines
    assert "-A ISTIO_OUTPUT -m owner --gid-owner 2001 -j RETURN" in lines
    assert not any("1337" in line for line in lines)


def test_excluded_outbound_ports_return_before_anything_else() -> None:
    rules = capture_rules(CaptureSettings(exclude_outbound_ports=(22, 5432))).in_chain(
        "ISTIO_OUTPUT"
    )
    assert rules[0] == ("-p", "tcp", "-m", "multiport", "--dports", "22,5432", "-j", "RETURN")
    single = capture_rules(CaptureSettings(exclude_outbound_ports=(22,))).in_chain("ISTIO_OUTPUT")
    assert single[0] == ("-p", "tcp", "--dport", "22", "-j", "RETURN")


def test_excluded_cidrs_return_before_the_included_ones_redirect() -> None:
    s = CaptureSettings(
        include_outbound_ip_ranges=(IPv4Network("10.96.0.0/12"), IPv4Network("10.244.0.0/16")),
        exclude_outbound_ip_ranges=(IPv4Network("10.96.0.10/32"),),
        include_outbound_ports=(3306,),
    )
    tail = capture_rules(s).in_chain("ISTIO_OUTPUT")[-5:]
    assert tail == [
        ("-d", "127.0.0.1/32", "-j", "RETURN"),
        ("-d", "10.96.0.10/32", "-j", "RETURN"),
        ("-p", "tcp", "--dport", "3306", "-j", "ISTIO_REDIRECT"),
        ("-d", "10.96.0.0/12", "-j", "ISTIO_REDIRECT"),
        ("-d", "10.244.0.0/16", "-j", "ISTIO_REDIRECT"),
    ]
    assert ("-j", "ISTIO_REDIRECT") not in capture_rules(s).in_chain("ISTIO_OUTPUT")


def test_no_included_ranges_redirects_no_outbound_traffic() -> None:
    rules = capture_rules(CaptureSettings(include_outbound_ip_ranges=())).in_chain("ISTIO_OUTPUT")
    assert not any(args[-1] == "ISTIO_REDIRECT" for args in rules)


def test_a_loopback_include_keeps_the_apps_loopback_traffic_captured() -> None:
    s = CaptureSettings(include_outbound_ip_ranges=(IPv4Network("127.0.0.0/8"),))
    rules = capture_rules(s).in_chain("ISTIO_OUTPUT")
    assert ("-o", "lo", "-m", "owner", "!", "--uid-owner", "1337", "-j", "RETURN") not in rules
    assert ("-m", "owner", "--uid-owner", "1337", "-j", "RETURN") in rules


def test_listed_inbound_ports_only_are_redirected_minus_the_proxys_own() -> None:
    s = CaptureSettings(include_inbound_ports=(8080, 9090, 15090), proxy_ports=(15090,))
    assert capture_rules(s).in_chain("ISTIO_INBOUND") == [
        ("-p", "tcp", "--dport", "8080", "-j", "ISTIO_IN_REDIRECT"),
        ("-p", "tcp", "--dport", "9090", "-j", "ISTIO_IN_REDIRECT"),
    ]


def test_no_inbound_ports_means_no_prerouting_jump() -> None:
    s = CaptureSettings(include_inbound_ports=())
    assert capture_rules(s).in_chain("PREROUTING") == []
    assert capture_rules(s).in_chain("ISTIO_INBOUND") == []


def test_excluded_inbound_ports_join_the_proxy_ports() -> None:
    s = CaptureSettings(proxy_ports=(15000,), exclude_inbound_ports=(22, 15000))
    assert capture_rules(s).in_chain("ISTIO_INBOUND")[0] == (
        "-p", "tcp", "-m", "multiport", "--dports", "15000,22", "-j", "RETURN",
    )  # fmt: skip


SAVED = """# Generated by iptables-save v1.8.9 (nf_tables)
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:ISTIO_INBOUND - [0:0]
:ISTIO_IN_REDIRECT - [0:0]
:ISTIO_OUTPUT - [0:0]
:ISTIO_REDIRECT - [0:0]
:KUBE-SERVICES - [0:0]
-A PREROUTING -p tcp -j ISTIO_INBOUND
-A PREROUTING -j KUBE-SERVICES
-A OUTPUT -j ISTIO_OUTPUT
-A POSTROUTING -s 10.1.0.0/24 -j MASQUERADE
-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT
-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006
-A ISTIO_OUTPUT -j ISTIO_REDIRECT
-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001
COMMIT
"""


def test_removal_deletes_the_jumps_as_printed_then_the_chains_and_nothing_else() -> None:
    assert installed_chains(SAVED) == list(CHAINS)
    assert removal_lines(SAVED) == [
        "-D PREROUTING -p tcp -j ISTIO_INBOUND",
        "-D OUTPUT -j ISTIO_OUTPUT",
        *(f"-F {c}" for c in CHAINS),
        *(f"-X {c}" for c in CHAINS),
    ]
    assert removal_text(SAVED).splitlines()[0] == "*nat"


def test_removal_of_nothing_is_empty() -> None:
    plain = "*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -j KUBE-SERVICES\nCOMMIT\n"
    assert removal_lines(plain) == [] and removal_text(plain) == ""
