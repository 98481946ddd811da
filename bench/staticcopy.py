"""A live Envoy's configuration as a static bootstrap: the same Envoy without xDS or SDS.

`static_bootstrap(dump, secrets)` turns an Envoy's admin `/config_dump?include_eds` into
a bootstrap that starts the same configuration from a file: the dumped bootstrap as it is
(node, admin, stats_config, stats flush interval, layered runtime, overload manager, …)
without `dynamic_resources` and without the static clusters that only served delivery
(`xds-grpc` to the control plane, `sds-grpc` to the agent); every dynamic listener and
cluster as a static one; every HCM's RDS route replaced by the dumped RouteConfiguration
(`route_config`); every EDS cluster made STATIC with its dumped ClusterLoadAssignment as
`load_assignment`; every SDS secret reference kept by name (so the TLS contexts, their
combined validation contexts and SAN matchers stay exactly as dumped) with the secret
itself a static one from `secrets`, since a config dump redacts private keys
(`file_secrets` makes them from certificate files, e.g. `meshid.static_cert`).

`bench.pathcost` runs such a copy of plait's two sidecars beside them: what it costs per
request is the configuration alone, without its delivery (xDS and SDS streams, the agent).
`ports` and `paths` move the copy's listeners (and endpoints that point at them) and its
files (access logs) off the original's. The result names no config source: a leftover
(ECDS, scoped routes, …) is an error, not a silently dynamic copy.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from bench.meshid import CertFiles
from plait.agent.bootstrap import XDS_CLUSTER
from plait.model.identity import CERT_SECRET, ROOT_SECRET, SDS_CLUSTER

Json = dict[str, Any]
DELIVERY_CLUSTERS = (XDS_CLUSTER, SDS_CLUSTER)
_NODE_FIELDS = ("id", "cluster", "metadata", "locality")  # the rest Envoy fills in itself
_ADMIN = "type.googleapis.com/envoy.admin.v3."


class StaticCopyError(ValueError):
    """A config dump that cannot be made static as asked (names the part)."""


def sections(dump: Json) -> dict[str, Json]:
    """The config dump's parts by type (`BootstrapConfigDump`, `ClustersConfigDump`, …)."""
    out: dict[str, Json] = {}
    for part in dump.get("configs", []):
        kind = str(part.get("@type", ""))
        out[kind.removeprefix(_ADMIN)] = part
    if "BootstrapConfigDump" not in out:
        raise StaticCopyError("the config dump has no BootstrapConfigDump")
    return out


def listener_ports(dump: Json) -> list[int]:
    """The ports of the dump's dynamic listeners (those a static copy must move)."""
    return [
        int(entry["active_state"]["listener"]["address"]["socket_address"]["port_value"])
        for entry in sections(dump).get("ListenersConfigDump", {}).get("dynamic_listeners", [])
        if "socket_address" in entry.get("active_state", {}).get("listener", {}).get("address", {})
    ]


def file_secrets(cert: CertFiles) -> dict[str, Json]:
    """plait's two SDS secrets (`default`: certificate and key; `ROOTCA`: the trust
    bundle) from files, as static secrets."""
    return {
        CERT_SECRET: {
            "tls_certificate": {
                "certificate_chain": {"filename": str(cert.chain)},
                "private_key": {"filename": str(cert.key)},
            }
        },
        ROOT_SECRET: {"validation_context": {"trusted_ca": {"filename": str(cert.roots)}}},
    }


def static_bootstrap(
    dump: Json,
    secrets: Mapping[str, Json],
    *,
    ports: Mapping[int, int] | None = None,
    paths: Mapping[str, str] | None = None,
    drop_clusters: tuple[str, ...] = DELIVERY_CLUSTERS,
) -> Json:
    """The static bootstrap of `dump` (see the module docstring). `secrets`: each secret
    the configuration names, by name, as an envoy Secret without its name; `ports`: old
    → new port of any socket address; `paths`: old → new value of any string equal to
    one (file paths)."""
    parts = sections(dump)
    out = copy.deepcopy(parts["BootstrapConfigDump"]["bootstrap"])
    out.pop("dynamic_resources", None)
    node = out.get("node", {})
    out["node"] = {k: node[k] for k in _NODE_FIELDS if k in node}
    static = out.setdefault("static_resources", {})
    if static.get("secrets"):
        raise StaticCopyError("the bootstrap already has static secrets")
    static["clusters"] = [
        c for c in static.get("clusters", []) if c.get("name") not in drop_clusters
    ] + _clusters(parts)
    static["listeners"] = [*static.get("listeners", []), *_listeners(parts)]
    routes = _routes(parts)
    _inline_routes(static["listeners"], routes)
    named = _static_secrets(out)
    missing = sorted(named - set(secrets))
    if missing:
        raise StaticCopyError(f"no static secret given for {missing} (named by the dump's SDS)")
    static["secrets"] = [{"name": n, **copy.deepcopy(dict(secrets[n]))} for n in sorted(named)]
    moved: Json = _rewrite(out, ports or {}, paths or {})
    _check_static(moved)
    return moved


def _clusters(parts: Mapping[str, Json]) -> list[Json]:
    dumped = parts.get("ClustersConfigDump", {})
    if dumped.get("dynamic_warming_clusters"):
        names = [w["cluster"]["name"] for w in dumped["dynamic_warming_clusters"]]
        raise StaticCopyError(f"clusters still warming: {names}")
    endpoints = {
        e["endpoint_config"]["cluster_name"]: e["endpoint_config"]
        for e in parts.get("EndpointsConfigDump", {}).get("dynamic_endpoint_configs", [])
    }
    out = []
    for entry in dumped.get("dynamic_active_clusters", []):
        cluster = copy.deepcopy(entry["cluster"])
        cluster.pop("@type", None)
        if cluster.get("type") == "EDS":
            eds = cluster.pop("eds_cluster_config", {})
            key = eds.get("service_name") or cluster["name"]
            assignment = copy.deepcopy(endpoints.get(key, {"cluster_name": key}))
            assignment.pop("@type", None)
            assignment["cluster_name"] = cluster["name"]
            for locality in assignment.get("endpoints", []):
                if not locality.get("load_balancing_weight"):  # the dump's 0: not set
                    locality.pop("load_balancing_weight", None)
            cluster["type"] = "STATIC"
            cluster["load_assignment"] = assignment
        out.append(cluster)
    return out


def _listeners(parts: Mapping[str, Json]) -> list[Json]:
    out = []
    for entry in parts.get("ListenersConfigDump", {}).get("dynamic_listeners", []):
        if "active_state" not in entry:
            raise StaticCopyError(f"listener {entry.get('name')!r} has no active state")
        listener = copy.deepcopy(entry["active_state"]["listener"])
        listener.pop("@type", None)
        out.append(listener)
    return out


def _routes(parts: Mapping[str, Json]) -> dict[str, Json]:
    dumped = parts.get("RoutesConfigDump", {})
    out = {}
    for entry in [
        *dumped.get("static_route_configs", []),
        *dumped.get("dynamic_route_configs", []),
    ]:
        route = copy.deepcopy(entry["route_config"])
        route.pop("@type", None)
        out[route.get("name", "")] = route
    if parts.get("ScopedRoutesConfigDump", {}).get("dynamic_scoped_route_configs"):
        raise StaticCopyError("scoped routes (SRDS) are not supported")
    return out


def _inline_routes(node: Any, routes: Mapping[str, Json]) -> None:
    """Every `rds` (an HCM's) in `node` replaced by the named route configuration."""
    if isinstance(node, list):
        for item in node:
            _inline_routes(item, routes)
    elif isinstance(node, dict):
        rds = node.get("rds")
        if isinstance(rds, dict) and "route_config_name" in rds:
            name = rds["route_config_name"]
            if name not in routes:
                raise StaticCopyError(f"route configuration {name!r} is not in the dump")
            del node["rds"]
            node["route_config"] = copy.deepcopy(routes[name])
        for value in node.values():
            _inline_routes(value, routes)


def _static_secrets(node: Any) -> set[str]:
    """Drops the `sds_config` of every SdsSecretConfig in `node` (it then names a static
    secret); the names."""
    names: set[str] = set()
    if isinstance(node, list):
        for item in node:
            names |= _static_secrets(item)
    elif isinstance(node, dict):
        if "sds_config" in node and "name" in node:
            del node["sds_config"]
            names.add(str(node["name"]))
        for value in node.values():
            names |= _static_secrets(value)
    return names


def _rewrite(node: Any, ports: Mapping[int, int], paths: Mapping[str, str]) -> Any:
    if isinstance(node, list):
        return [_rewrite(item, ports, paths) for item in node]
    if isinstance(node, dict):
        out = {k: _rewrite(v, ports, paths) for k, v in node.items()}
        address = out.get("socket_address")
        if isinstance(address, dict) and int(address.get("port_value", 0)) in ports:
            address["port_value"] = ports[int(address["port_value"])]
        return out
    if isinstance(node, str):
        return paths.get(node, node)
    return node


_DYNAMIC_KEYS = ("ads", "api_config_source", "rds", "eds_cluster_config", "sds_config")


def _check_static(node: Any, where: str = "") -> None:
    """Raises if anything in `node` still names a config source."""
    if isinstance(node, list):
        for i, item in enumerate(node):
            _check_static(item, f"{where}[{i}]")
    elif isinstance(node, dict):
        for key, value in node.items():
            if key in _DYNAMIC_KEYS or key == "config_source":
                raise StaticCopyError(f"{where}.{key}: still a dynamic config source")
            _check_static(value, f"{where}.{key}")
