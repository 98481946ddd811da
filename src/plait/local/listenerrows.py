"""Listeners and routes of a config dump as plain rows for `plait proxy-config` (pure).

A listener gives one row per filter chain (its match, network filters, the HTTP filters
and route configuration of an HTTP connection manager); a route configuration gives one
row per route of each virtual host.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from plait.local.configdump import section
from plait.local.configrows import Json, address_text


# --- listeners -----------------------------------------------------------------------
@dataclass(frozen=True)
class ListenerRow:
    """One filter chain of one listener (a listener without chains gets one row)."""

    listener: str
    address: str
    state: str  # static, active, warming, draining, or "rejected: <Envoy's reason>"
    chain: str  # the filter chain's name, "default" for the default chain
    match: str
    filters: tuple[str, ...]  # network filters, short names
    route: str  # RDS route config name, "inline NAME", or "" without HTTP
    http_filters: tuple[str, ...]


def _short(name: str, prefix: str) -> str:
    return name.removeprefix(prefix)


def match_text(match: Json | None) -> str:
    """`transport_protocol=tls, server_names=a,b`, or `any` for an empty match."""
    if not match:
        return "any"
    parts = []
    for key, value in match.items():
        if isinstance(value, list):
            value = ",".join(
                f"{v.get('address_prefix')}/{v.get('prefix_len', 0)}"
                if isinstance(v, dict)
                else str(v)
                for v in value
            )
        parts.append(f"{key}={value}")
    return ", ".join(parts)


def _chain_row(listener: Json, state: str, chain: Json, chain_name: str) -> ListenerRow:
    filters: list[str] = []
    route = ""
    http: tuple[str, ...] = ()
    for f in chain.get("filters", []):
        name = str(f.get("name", ""))
        filters.append(_short(name, "envoy.filters.network."))
        config = f.get("typed_config", {})
        if "http_filters" in config or "rds" in config or "route_config" in config:
            if "rds" in config:
                route = str(config["rds"].get("route_config_name", ""))
            elif "route_config" in config:
                route = f"inline {config['route_config'].get('name', '')}".strip()
            http = tuple(
                _short(str(h.get("name", "")), "envoy.filters.http.")
                for h in config.get("http_filters", [])
            )
    return ListenerRow(
        listener=str(listener.get("name", "")),
        address=address_text(listener.get("address", {})),
        state=state,
        chain=chain_name,
        match=match_text(chain.get("filter_chain_match")),
        filters=tuple(filters),
        route=route,
        http_filters=http,
    )


def _rows_of_listener(listener: Json, state: str) -> Iterator[ListenerRow]:
    chains = [
        (c, str(c.get("name") or f"#{i}")) for i, c in enumerate(listener.get("filter_chains", []))
    ]
    if "default_filter_chain" in listener:
        chains.append((listener["default_filter_chain"], "default"))
    if not chains:
        yield _chain_row(listener, state, {}, "-")
    for chain, name in chains:
        yield _chain_row(listener, state, chain, name)


def listener_rows(dump: Json) -> list[ListenerRow]:
    """Every filter chain of every static and dynamic listener; a dynamic listener that
    Envoy rejected also shows the rejected version with Envoy's reason."""
    dumped = section(dump, "listener")
    rows: list[ListenerRow] = []
    for static in dumped.get("static_listeners", []):
        rows += _rows_of_listener(static.get("listener", {}), "static")
    for dynamic in dumped.get("dynamic_listeners", []):
        for key in ("active_state", "warming_state", "draining_state"):
            if key in dynamic:
                rows += _rows_of_listener(
                    dynamic[key].get("listener", {}), key.removesuffix("_state")
                )
        if "error_state" in dynamic:
            error = dynamic["error_state"]
            failed = error.get("failed_configuration", {"name": dynamic.get("name", "")})
            rows += _rows_of_listener(failed, f"rejected: {error.get('details', '')}")
    return rows


# --- routes --------------------------------------------------------------------------
@dataclass(frozen=True)
class RouteRow:
    route_config: str
    virtual_host: str
    domains: tuple[str, ...]
    name: str  # the route's name ("" when unnamed)
    match: str
    action: str


def route_match_text(match: Json) -> str:
    """`/api*` (prefix), `/exact`, `~REGEX`, then `headers: a,b` and `query: q`, `grpc`."""
    if "prefix" in match:
        text = f"{match['prefix'] or '/'}*"
    elif "path" in match:
        text = str(match["path"])
    elif "safe_regex" in match:
        text = f"~{match['safe_regex'].get('regex', '')}"
    elif "path_separated_prefix" in match:
        text = f"{match['path_separated_prefix']}/*"
    elif "connect_matcher" in match:
        text = "CONNECT"
    else:
        text = "?"
    headers = [str(h.get("name", "")) for h in match.get("headers", [])]
    queries = [str(q.get("name", "")) for q in match.get("query_parameters", [])]
    if headers:
        text += f" headers: {','.join(headers)}"
    if queries:
        text += f" query: {','.join(queries)}"
    if "grpc" in match:
        text += " grpc"
    return text


def route_action_text(route: Json) -> str:
    """The cluster(s) a route sends to, or what it answers instead."""
    if "route" in route:
        action = route["route"]
        if "cluster" in action:
            return str(action["cluster"])
        if "weighted_clusters" in action:
            return ", ".join(
                f"{c.get('name')} ({c.get('weight', 0)})"
                for c in action["weighted_clusters"].get("clusters", [])
            )
        if "cluster_header" in action:
            return f"cluster from header {action['cluster_header']}"
        return "route"
    if "redirect" in route:
        fields = ", ".join(f"{k}={v}" for k, v in route["redirect"].items())
        return f"redirect {fields}".strip()
    if "direct_response" in route:
        return f"direct response {route['direct_response'].get('status', '')}"
    if "non_forwarding_action" in route:
        return "no forwarding"
    return "?"


def route_rows(dump: Json) -> list[RouteRow]:
    """Every route of every virtual host of every route configuration (static, dynamic)."""
    dumped = section(dump, "route")
    configs = [c.get("route_config", {}) for c in dumped.get("static_route_configs", [])]
    configs += [c.get("route_config", {}) for c in dumped.get("dynamic_route_configs", [])]
    rows = []
    for config in configs:
        for vhost in config.get("virtual_hosts", []):
            for route in vhost.get("routes", []):
                rows.append(
                    RouteRow(
                        route_config=str(config.get("name", "")),
                        virtual_host=str(vhost.get("name", "")),
                        domains=tuple(str(d) for d in vhost.get("domains", [])),
                        name=str(route.get("name", "")),
                        match=route_match_text(route.get("match", {})),
                        action=route_action_text(route),
                    )
                )
    return rows
