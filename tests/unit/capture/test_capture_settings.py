"""Capture settings from Istio's pod annotations; bad values name the annotation."""

from __future__ import annotations

from ipaddress import IPv4Network

import pytest

from plait.capture.settings import (
    ALL,
    CaptureSettings,
    from_annotations,
    parse_downward_annotations,
)
from plait.errors import CaptureSettingsError

P = "traffic.sidecar.istio.io/"


def test_no_annotations_capture_everything() -> None:
    s = from_annotations({})
    assert s == CaptureSettings()
    assert s.include_outbound_ip_ranges == ALL and s.include_inbound_ports == ALL
    assert (s.proxy_uid, s.outbound_capture_port, s.inbound_capture_port) == (1337, 15001, 15006)


def test_every_annotation_is_read() -> None:
    s = from_annotations(
        {
            P + "includeOutboundIPRanges": "10.96.0.0/12, 10.244.0.1/16",
            P + "excludeOutboundIPRanges": "10.96.0.10/32",
            P + "includeOutboundPorts": "3306",
            P + "excludeOutboundPorts": "22,443,22",
            P + "includeInboundPorts": "8080,9090",
            P + "excludeInboundPorts": "9090",
            "other.io/ignored": "x",
        }
    )
    assert s.include_outbound_ip_ranges == (
        IPv4Network("10.96.0.0/12"),
        IPv4Network("10.244.0.0/16"),
    )
    assert s.exclude_outbound_ip_ranges == (IPv4Network("10.96.0.10/32"),)
    assert (s.include_outbound_ports, s.exclude_outbound_ports) == ((3306,), (22, 443))
    assert (s.include_inbound_ports, s.exclude_inbound_ports) == ((8080, 9090), (9090,))


def test_empty_values_capture_nothing_and_star_everything() -> None:
    s = from_annotations({P + "includeOutboundIPRanges": "", P + "includeInboundPorts": " "})
    assert s.include_outbound_ip_ranges == () and s.include_inbound_ports == ()
    s = from_annotations({P + "includeOutboundIPRanges": "*", P + "includeInboundPorts": "*"})
    assert s.include_outbound_ip_ranges == ALL and s.include_inbound_ports == ALL


def test_base_settings_keep_what_annotations_do_not_set() -> None:
    base = CaptureSettings(proxy_ports=(15000,), proxy_uid=7)
    s = from_annotations({P + "excludeInboundPorts": "22"}, base)
    assert (s.proxy_ports, s.proxy_uid, s.exclude_inbound_ports) == ((15000,), 7, (22,))
    assert s.inbound_exclusions == (15000, 22)


@pytest.mark.parametrize(
    ("annotation", "value", "reason"),
    [
        ("excludeOutboundPorts", "22,ssh", "'ssh' is not a port"),
        ("includeInboundPorts", "70000", "'70000' is not a port"),
        ("excludeInboundPorts", "*", "'*' is not a port"),
        ("includeOutboundIPRanges", "10.0.0.0", "is not a CIDR (expected e.g. 10.0.0.0/8)"),
        ("excludeOutboundIPRanges", "*", "'*' is not allowed here"),
        ("excludeOutboundIPRanges", "10.0.0.300/8", "'10.0.0.300/8' is not a CIDR"),
        ("includeOutboundIPRanges", "fd00::/8", "IPv6; plait captures IPv4 only"),
    ],
)
def test_bad_values_name_the_annotation(annotation: str, value: str, reason: str) -> None:
    with pytest.raises(CaptureSettingsError) as info:
        from_annotations({P + annotation: value})
    assert info.value.annotation == P + annotation
    assert str(info.value).startswith(f"annotation {P}{annotation}={value!r}: ")
    assert reason in str(info.value)


def test_downward_api_file_format() -> None:
    text = f'{P}excludeOutboundPorts="22,443"\nkubectl.kubernetes.io/restartedAt="a \\"b\\""\n\n'
    assert parse_downward_annotations(text) == {
        P + "excludeOutboundPorts": "22,443",
        "kubectl.kubernetes.io/restartedAt": 'a "b"',
    }
    with pytest.raises(CaptureSettingsError, match='expected key="value"'):
        parse_downward_annotations(f"{P}excludeOutboundPorts=22")
