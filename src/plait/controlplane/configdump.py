"""What the control plane sends one proxy, in the shape of Envoy's admin `/config_dump`
(as istiod's `/debug/config_dump?proxyID=`): `plait proxy-config --kubeconfig` reads it
through the API server, where no Envoy admin port can be reached. Pure: no I/O.

Each resource is decoded from the bytes the xDS server pushes, so the dump is what the
proxy is sent, not a re-translation; the section shapes are those `plait.local.configrows`
reads (dynamic_active_clusters, dynamic_listeners.active_state, dynamic_route_configs,
dynamic_endpoint_configs).
"""

from __future__ import annotations

from typing import Any

from google.protobuf import any_pb2, json_format, symbol_database

from plait.translate import typeurls
from plait.translate.resource import ProxyConfig, Resource

_ADMIN = "type.googleapis.com/envoy.admin.v3."


def _decode(resource: Resource) -> dict[str, Any]:
    """The resource's message (its body is the `Any` the xDS response carries) as JSON."""
    wrapped = any_pb2.Any.FromString(resource.body)
    message = symbol_database.Default().GetSymbol(wrapped.TypeName())()
    wrapped.Unpack(message)
    data: dict[str, Any] = json_format.MessageToDict(message, preserving_proto_field_name=True)
    return {"@type": resource.type_url, **data}


def config_dump(config: ProxyConfig) -> dict[str, Any]:
    """The proxy's clusters, endpoints, listeners and routes as Envoy's config dump."""

    def entries(type_url: str) -> list[tuple[str, dict[str, Any]]]:
        found = config.by_type.get(type_url, {})
        version = config.versions.get(type_url, "")
        return [(version, _decode(found[n])) for n in sorted(found)]

    clusters = [{"version_info": v, "cluster": c} for v, c in entries(typeurls.CLUSTER)]
    endpoints = [{"version_info": v, "endpoint_config": e} for v, e in entries(typeurls.ENDPOINT)]
    listeners = [
        {"name": li.get("name", ""), "active_state": {"version_info": v, "listener": li}}
        for v, li in entries(typeurls.LISTENER)
    ]
    routes = [{"version_info": v, "route_config": r} for v, r in entries(typeurls.ROUTE)]
    return {
        "configs": [
            {"@type": _ADMIN + "ClustersConfigDump", "dynamic_active_clusters": clusters},
            {"@type": _ADMIN + "ListenersConfigDump", "dynamic_listeners": listeners},
            {"@type": _ADMIN + "RoutesConfigDump", "dynamic_route_configs": routes},
            {"@type": _ADMIN + "EndpointsConfigDump", "dynamic_endpoint_configs": endpoints},
        ]
    }
