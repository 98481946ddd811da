"""The string syntaxes Istio's validation checks: host names, gateway names, header names
and values, label maps. Each check raises ValueError with a message a user can act on.

Reference: istio/istio pkg/config/validation (agent.ValidateWildcardDomain, ValidateFQDN,
validateGatewayNames, ValidateHTTPHeader*, header_value_validator.go) and
pkg/config/labels. Functions, not models, so every resource model can share them.
"""

from __future__ import annotations

import ipaddress
import re

from plait.api.common import is_ip

_LABEL = r"[a-zA-Z0-9](?:[-a-zA-Z0-9]*[a-zA-Z0-9])?"
_DNS_LABEL = re.compile(f"^{_LABEL}$")
_WILDCARD_LABEL = re.compile(rf"^(\*|(\*|\*-)?{_LABEL})$")
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~A-Za-z0-9]+$")
"""An HTTP header name (RFC 7230 tchars)."""
_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f]")
_QUALIFIED = r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_LABEL_KEY = re.compile(
    rf"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?{_QUALIFIED}$"
)
_LABEL_VALUE = re.compile(rf"^({_QUALIFIED})?$")

CORS_METHODS = frozenset(
    ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE", "*")
)
"""What Istio accepts in `corsPolicy.allowMethods` (Go's net/http method names, and `*`)."""


def is_dns_label(value: str) -> bool:
    return len(value) <= 63 and bool(_DNS_LABEL.match(value))


def _length(name: str) -> None:
    if not name:
        raise ValueError("an empty host name is not allowed")
    if len(name) > 255:
        raise ValueError(f"host name '{name[:40]}...' is too long (at most 255 characters)")


def _labels(domain: str, whole: str) -> None:
    parts = domain.split(".")
    if parts[-1].isdigit():
        raise ValueError(f"host '{whole}': the top-level domain '{parts[-1]}' cannot be a number")
    for i, label in enumerate(parts):
        if i == len(parts) - 1 and label == "":
            return  # a trailing dot (`istio.io.`) is allowed
        if not is_dns_label(label):
            raise ValueError(
                f"host '{whole}' is not a valid name: label '{label}' must be letters, digits "
                "and '-' (a '*' may only start the first label)"
            )


def fqdn(name: str) -> str:
    """A DNS name without wildcards."""
    _length(name)
    _labels(name, name)
    return name


def wildcard_domain(name: str) -> str:
    """A DNS name whose first label may be `*` or start with `*` (`*.example.com`)."""
    _length(name)
    first, dot, rest = name.partition(".")
    if not _WILDCARD_LABEL.match(first) or len(first) > 63:
        raise ValueError(
            f"host '{name}' is not a valid name: label '{first}' must be letters, digits and "
            "'-' (a '*' may only start the first label)"
        )
    if dot:
        _labels(rest, name)
    return name


AUTO_SNI = re.compile(r"^outbound_\.[0-9][^_]*_\._\.[a-zA-Z].*$")
"""`outbound_.PORT_._.HOST`: the SNI Istio's sidecars send, matched by gateways in
AUTO_PASSTHROUGH mode; a host only a gateway-bound VirtualService may name."""


def host_or_ip(name: str) -> str:
    """A VirtualService host: a (wildcard) DNS name, an IP address or an AUTO_SNI name."""
    if is_ip(name) or AUTO_SNI.match(name):
        return name
    return wildcard_domain(name)


def gateway_name(name: str) -> str:
    """`NAMESPACE/NAME` (both DNS labels), or a plain name (`mesh`, `my-gateway`)."""
    ns, slash, gw = name.partition("/")
    if not slash:
        fqdn(name)
        return name
    if not ns or not gw:
        raise ValueError(f"gateway '{name}': namespace and name cannot be empty")
    for part, what in ((ns, "namespace"), (gw, "gateway name")):
        if not is_dns_label(part):
            raise ValueError(f"gateway '{name}': '{part}' is not a valid {what} (a DNS label)")
    return name


def gateway_server_host(name: str) -> str:
    """A Gateway server host: `[NAMESPACE/]HOST`; NAMESPACE is `*`, `.` or a DNS label; HOST
    is a fully qualified (wildcard) name, `*`, or an IP."""
    ns, slash, host = name.partition("/")
    if not slash:
        host, ns = name, ""
    elif not ns or not host:
        raise ValueError(f"host '{name}': namespace and host cannot be empty")
    elif ns not in ("*", ".") and not is_dns_label(ns):
        raise ValueError(f"host '{name}': '{ns}' is not a namespace, '*' or '.'")
    if host != "*" and "." not in host:
        raise ValueError(f"host '{name}': short names are not allowed here; use a full name")
    if not is_ip(host):
        wildcard_domain(host)
    if "*" in host and host != "*" and not host.startswith("*."):
        raise ValueError(f"host '{name}': a partial wildcard is not allowed; use '*.DOMAIN'")
    return name


def non_empty_header(name: str) -> str:
    """Envoy refuses a header operation with an empty name."""
    if not name:
        raise ValueError("a header name cannot be empty")
    return name


def header_name(name: str) -> str:
    """A header name that may be added, set or removed (Envoy refuses an empty one)."""
    if not name:
        raise ValueError("a header name cannot be empty")
    if name.startswith(":") or name.lower() == "host":
        raise ValueError(f"header '{name}' cannot be changed here (pseudo-header or Host)")
    return name


def header_name_or_authority(name: str) -> str:
    """A request header name to add or set: like `header_name`, but `:authority` and
    `host` rewrite the authority (as Istio allows)."""
    if name.lower() in (":authority", "host"):
        return name
    return header_name(name)


def match_header_name(name: str) -> str:
    """A header to match on: a token, a pseudo-header, or `@request.auth.claims.NAME`."""
    if not name:
        raise ValueError("a header name cannot be empty")
    if name.startswith("@request.auth.claims") or name in (
        ":method",
        ":scheme",
        ":authority",
        ":path",
        ":status",
    ):
        return name
    if not _TOKEN.match(name):
        raise ValueError(f"'{name}' is not a valid header name")
    return name


def cors_header_name(name: str) -> str:
    if name == "*":
        return name
    if not name or not _TOKEN.match(name):
        raise ValueError(f"'{name}' is not a valid header name")
    return name


def header_value(value: str) -> str:
    """A header value Envoy accepts: no control characters, and every `%` starts `%%` or
    a whole `%COMMAND%` / `%COMMAND(args)%` (Envoy's substitution format)."""
    if _CONTROL.search(value):
        raise ValueError(f"header value {value!r} contains a control character")
    i = 0
    while i < len(value):
        if value[i] != "%":
            i += 1
        elif value.startswith("%%", i):
            i += 2
        else:
            end = _variable_end(value, i + 1)
            if end < 0:
                raise ValueError(
                    f"header value '{value}': a '%' must be written '%%' or start a "
                    "%COMMAND% substitution that is closed"
                )
            i = end + 1
    return value


def _variable_end(value: str, start: int) -> int:
    """The index of the `%` closing the variable that starts at `start`, or -1."""
    i = start
    while i < len(value) and value[i] not in "%(":
        i += 1
    if i == len(value):
        return -1
    if value[i] == "%":
        return i
    depth_end = value.find(")", i)
    if depth_end < 0:
        return -1
    rest = value[depth_end + 1 :]
    stripped = rest.lstrip(" ")
    if not stripped.startswith("%"):
        return -1
    return depth_end + 1 + (len(rest) - len(stripped))


def label_map(value: dict[str, str]) -> dict[str, str]:
    """Kubernetes label keys and values (Istio's labels.Instance.Validate)."""
    for key, val in value.items():
        if not _LABEL_KEY.match(key) or len(key.rsplit("/", 1)[-1]) > 63:
            raise ValueError(f"label key '{key}' is not valid")
        if len(val) > 63 or not _LABEL_VALUE.match(val):
            raise ValueError(f"label value '{val}' of '{key}' is not valid")
    return value


def ip_subnet(value: str) -> str:
    """An IP address or a CIDR block (`10.0.0.0/8`, `2001:db8::/32`)."""
    try:
        if value.count("/") == 1:
            ipaddress.ip_network(value, strict=False)
        else:
            ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(f"'{value}' is not an IP address or CIDR block") from None
    return value


def is_prime(n: int) -> bool:
    if n < 2:
        return False
    return all(n % d for d in range(2, int(n**0.5) + 1))
