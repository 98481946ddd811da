"""A proxy's capture settings, and reading them from a pod's Istio annotations.

The annotation names and value syntax are Istio's (`traffic.sidecar.istio.io/...`), so
pods annotated for Istio keep their meaning under plait:

- includeOutboundIPRanges: `*` (default) or a comma list of CIDRs; `""` captures none.
- excludeOutboundIPRanges: a comma list of CIDRs (no `*`).
- includeOutboundPorts / excludeOutboundPorts: comma lists of ports.
- includeInboundPorts: `*` (default) or a comma list of ports; `""` captures no inbound.
- excludeInboundPorts: a comma list of ports; the proxy's own ports are always added.

Only IPv4 is captured (plait's pods are IPv4): an IPv6 range is an error, not silently
dropped. Everything here is pure.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, replace
from ipaddress import IPv4Network
from typing import Final, Literal

from plait.errors import CaptureSettingsError

PREFIX: Final = "traffic.sidecar.istio.io/"
INCLUDE_OUTBOUND_IP_RANGES: Final = PREFIX + "includeOutboundIPRanges"
EXCLUDE_OUTBOUND_IP_RANGES: Final = PREFIX + "excludeOutboundIPRanges"
INCLUDE_OUTBOUND_PORTS: Final = PREFIX + "includeOutboundPorts"
EXCLUDE_OUTBOUND_PORTS: Final = PREFIX + "excludeOutboundPorts"
INCLUDE_INBOUND_PORTS: Final = PREFIX + "includeInboundPorts"
EXCLUDE_INBOUND_PORTS: Final = PREFIX + "excludeInboundPorts"

ANNOTATIONS: Final = (
    INCLUDE_OUTBOUND_IP_RANGES,
    EXCLUDE_OUTBOUND_IP_RANGES,
    INCLUDE_OUTBOUND_PORTS,
    EXCLUDE_OUTBOUND_PORTS,
    INCLUDE_INBOUND_PORTS,
    EXCLUDE_INBOUND_PORTS,
)

ALL: Final = "*"
All = Literal["*"]

PROXY_UID: Final = 1337
"""Istio's istio-proxy UID/GID: the proxy runs as it, and its own traffic is never captured."""
OUTBOUND_CAPTURE_PORT: Final = 15001
INBOUND_CAPTURE_PORT: Final = 15006


@dataclass(frozen=True)
class CaptureSettings:
    """What one pod's capture rules redirect, and whose traffic they leave alone.

    `proxy_ports` are the proxy's own listening ports (admin, metrics, health): inbound
    connections to them are never redirected, as Istio's injector adds 15090/15021/15020
    to the inbound exclusions.
    """

    proxy_uid: int = PROXY_UID
    proxy_gid: int = PROXY_UID
    outbound_capture_port: int = OUTBOUND_CAPTURE_PORT
    inbound_capture_port: int = INBOUND_CAPTURE_PORT
    proxy_ports: tuple[int, ...] = ()
    include_outbound_ip_ranges: tuple[IPv4Network, ...] | All = ALL
    exclude_outbound_ip_ranges: tuple[IPv4Network, ...] = ()
    include_outbound_ports: tuple[int, ...] = ()
    exclude_outbound_ports: tuple[int, ...] = ()
    include_inbound_ports: tuple[int, ...] | All = ALL
    exclude_inbound_ports: tuple[int, ...] = ()

    @property
    def inbound_exclusions(self) -> tuple[int, ...]:
        """Ports never redirected inbound: the proxy's own, then the annotation's."""
        out = list(self.proxy_ports)
        out += [p for p in self.exclude_inbound_ports if p not in out]
        return tuple(out)


def _items(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def _ports(annotation: str, value: str) -> tuple[int, ...]:
    ports: list[int] = []
    for item in _items(value):
        if not item.isdigit() or not 1 <= int(item) <= 65535:
            raise CaptureSettingsError(
                annotation, value, f"{item!r} is not a port (expected 1-65535, comma-separated)"
            )
        if int(item) not in ports:
            ports.append(int(item))
    return tuple(ports)


def _ports_or_all(annotation: str, value: str) -> tuple[int, ...] | All:
    return ALL if value.strip() == ALL else _ports(annotation, value)


def _cidrs(annotation: str, value: str) -> tuple[IPv4Network, ...]:
    nets: list[IPv4Network] = []
    for item in _items(value):
        if item == ALL:
            raise CaptureSettingsError(annotation, value, "'*' is not allowed here; list CIDRs")
        if "/" not in item:
            raise CaptureSettingsError(
                annotation, value, f"{item!r} is not a CIDR (expected e.g. 10.0.0.0/8)"
            )
        try:
            net = ipaddress.ip_network(item, strict=False)
        except ValueError as exc:
            raise CaptureSettingsError(
                annotation, value, f"{item!r} is not a CIDR: {exc}"
            ) from None
        if not isinstance(net, IPv4Network):
            raise CaptureSettingsError(
                annotation, value, f"{item!r} is IPv6; plait captures IPv4 only"
            )
        if net not in nets:
            nets.append(net)
    return tuple(nets)


def _cidrs_or_all(annotation: str, value: str) -> tuple[IPv4Network, ...] | All:
    return ALL if value.strip() == ALL else _cidrs(annotation, value)


def from_annotations(
    annotations: Mapping[str, str], base: CaptureSettings | None = None
) -> CaptureSettings:
    """`base` (defaults: capture everything) overridden by the pod's capture annotations.

    Unknown `traffic.sidecar.istio.io/` keys are left alone (Istio has more of them, e.g.
    for interfaces, that plait does not act on); a malformed value raises
    CaptureSettingsError naming the annotation.
    """
    settings = base or CaptureSettings()
    parsers = {
        INCLUDE_OUTBOUND_IP_RANGES: ("include_outbound_ip_ranges", _cidrs_or_all),
        EXCLUDE_OUTBOUND_IP_RANGES: ("exclude_outbound_ip_ranges", _cidrs),
        INCLUDE_OUTBOUND_PORTS: ("include_outbound_ports", _ports),
        EXCLUDE_OUTBOUND_PORTS: ("exclude_outbound_ports", _ports),
        INCLUDE_INBOUND_PORTS: ("include_inbound_ports", _ports_or_all),
        EXCLUDE_INBOUND_PORTS: ("exclude_inbound_ports", _ports),
    }
    changes: dict[str, object] = {}
    for annotation, (attr, parse) in parsers.items():
        if annotation in annotations:
            changes[attr] = parse(annotation, annotations[annotation])
    return replace(settings, **changes)  # type: ignore[arg-type]


def parse_downward_annotations(text: str) -> dict[str, str]:
    """Annotations from a Kubernetes downward-API file (`key="value"` lines, Go-quoted).

    Raises CaptureSettingsError for a line that is not `key="value"`.
    """
    import json

    out: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        key, sep, raw = line.partition("=")
        if not sep or not raw.startswith('"') or not raw.endswith('"'):
            raise CaptureSettingsError(
                key.strip() or f"line {number}", line, 'expected key="value" (downward API)'
            )
        try:
            out[key.strip()] = str(json.loads(raw))
        except ValueError as exc:
            raise CaptureSettingsError(key.strip(), raw, f"bad quoting: {exc}") from None
    return out
