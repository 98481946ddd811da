"""A running proxy's Envoy admin interface, as `plait proxy-config` and `proxy-status` read it.

Three parts, kept apart: `find_proxy` picks the proxy a user named from `state.json`;
the `fetch_*` functions do the HTTP (loopback, short timeouts, every failure raised as
EnvoyAdminError); `section` and `redact` are pure and pick from what was fetched. The
readable rows built from those sections are in `configrows`.

Envoy admin API: https://www.envoyproxy.io/docs/envoy/latest/operations/admin
(`/config_dump`, `/clusters?format=json`, `/certs`, `/server_info`).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

from plait.errors import EnvoyAdminError, ProxyLookupError
from plait.local.statefile import ProxyEntry

ADMIN_TIMEOUT_S = 5.0

SECTION_TYPES = {
    "bootstrap": "BootstrapConfigDump",
    "cluster": "ClustersConfigDump",
    "listener": "ListenersConfigDump",
    "route": "RoutesConfigDump",
    "endpoint": "EndpointsConfigDump",
    "secret": "SecretsConfigDump",
}
"""`plait proxy-config KIND` → the `@type` (envoy.admin.v3.*) of its config dump section."""

SECRET_FIELDS = frozenset({"private_key", "password", "generic_secret", "session_ticket_keys"})
"""Fields never printed, whatever Envoy's own redaction (it redacts `private_key` only)."""

REDACTED = "[redacted]"


# --- which proxy ---------------------------------------------------------------------
def instance_of(entry: ProxyEntry) -> str:
    """`client-0` for `sidecar~client-0.default` (node ids are `KIND~INSTANCE.NAMESPACE`)."""
    _, _, rest = entry.name.partition("~")
    suffix = f".{entry.namespace}"
    return rest.removesuffix(suffix) if rest.endswith(suffix) else rest


def find_proxy(entries: Sequence[ProxyEntry], wanted: str) -> ProxyEntry:
    """The proxy `wanted` names: its full name (`sidecar~client-0.default`), its instance
    (`client-0`, or `client-0.default`), or its workload when that has one replica.

    Raises ProxyLookupError, listing the candidates, when none or several match.
    """
    for matches in (
        [e for e in entries if e.name == wanted],
        [e for e in entries if wanted in (instance_of(e), f"{instance_of(e)}.{e.namespace}")],
        [e for e in entries if e.workload == wanted],
    ):
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            names = ", ".join(sorted(e.name for e in matches))
            raise ProxyLookupError(f"'{wanted}' names {len(matches)} proxies ({names}); name one")
    known = ", ".join(sorted(e.name for e in entries)) or "none"
    raise ProxyLookupError(f"no proxy '{wanted}' in the running mesh; proxies: {known}")


# --- fetching ------------------------------------------------------------------------
def admin_get(admin: str, path: str, timeout: float = ADMIN_TIMEOUT_S) -> Any:
    """GET `path` from the Envoy admin at `admin` (HOST:PORT) and decode its JSON."""
    url = f"http://{admin}{path}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - loopback admin from state.json
            return json.loads(resp.read())
    except (OSError, urllib.error.URLError, ValueError) as exc:
        raise EnvoyAdminError(
            f"cannot read {url}: {exc}; is the proxy running? (see `plait status`)"
        ) from exc


def fetch_config_dump(admin: str, *, include_eds: bool = False) -> dict[str, Any]:
    """`/config_dump`; with `include_eds`, the endpoints (EDS) section too."""
    data: dict[str, Any] = admin_get(
        admin, "/config_dump?include_eds" if include_eds else "/config_dump"
    )
    return data


def fetch_clusters(admin: str) -> dict[str, Any]:
    """`/clusters?format=json`: every cluster's hosts with live health and weight."""
    data: dict[str, Any] = admin_get(admin, "/clusters?format=json")
    return data


def fetch_certs(admin: str) -> dict[str, Any]:
    """`/certs`: the certificates Envoy's TLS contexts hold now."""
    data: dict[str, Any] = admin_get(admin, "/certs")
    return data


def fetch_server_info(admin: str, timeout: float = 2.0) -> dict[str, Any]:
    """`/server_info`: Envoy's version, state and command line."""
    data: dict[str, Any] = admin_get(admin, "/server_info", timeout)
    return data


# --- picking -------------------------------------------------------------------------
def section(dump: dict[str, Any], kind: str) -> dict[str, Any]:
    """The config dump section of `kind` (a key of SECTION_TYPES), redacted; an empty
    section of the right type when Envoy has none (e.g. no secrets yet)."""
    type_url = f"type.googleapis.com/envoy.admin.v3.{SECTION_TYPES[kind]}"
    for config in dump.get("configs", []):
        if config.get("@type") == type_url:
            found: dict[str, Any] = redact(config)
            return found
    return {"@type": type_url}


def redact(value: Any) -> Any:
    """A copy of `value` with every SECRET_FIELDS field replaced by '[redacted]'."""
    if isinstance(value, dict):
        return {k: REDACTED if k in SECRET_FIELDS else redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def envoy_version(server_info: dict[str, Any]) -> str | None:
    """`1.40.0` from `/server_info`'s `SHA/1.40.0/Clean/RELEASE/BoringSSL`."""
    parts = str(server_info.get("version") or "").split("/")
    return parts[1] if len(parts) > 1 and parts[1] else None
