"""Builders for the route translation tests: one VirtualService's rules → Envoy routes."""

from __future__ import annotations

from envoy.config.route.v3 import route_components_pb2 as rc
from translate_kit import REVIEWS_SERVICE, sidecar, snapshot

from plait.api import VirtualService
from plait.model.labels import Labels
from plait.model.proxy import Proxy
from plait.model.snapshot import MeshSnapshot
from plait.translate.routes import RouteContext, vs_routes

MESH = (
    REVIEWS_SERVICE
    + """apiVersion: v1
kind: Service
metadata: {name: mirror}
spec:
  selector: {app: mirror}
  ports: [{name: http, port: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: multi, namespace: team}
spec:
  selector: {app: multi}
  ports: [{name: http, port: 80}, {name: grpc, port: 9000}]
---
"""
)


def vs_text(
    http: str, name: str = "rules", namespace: str = "default", hosts: str = "[reviews]"
) -> str:
    return f"""apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  hosts: {hosts}
  http:
{http}
---
"""


def load(
    http: str, extra: str = "", namespace: str = "default"
) -> tuple[MeshSnapshot, VirtualService]:
    snap = snapshot(MESH + extra + vs_text(http, namespace=namespace))
    loaded = next(v for v in snap.virtual_services if v.resource.metadata.name == "rules")
    return snap, loaded.resource  # type: ignore[return-value]


def caller(labels: dict[str, str] | None = None, namespace: str = "default") -> Proxy:
    base = sidecar("frontend-0", namespace=namespace)
    return Proxy(
        id=base.id,
        kind=base.kind,
        workload=base.workload,
        namespace=namespace,
        labels=Labels.of(labels if labels is not None else {"app": "frontend"}),
    )


def routes(
    http: str,
    *,
    extra: str = "",
    namespace: str = "default",
    port: int | None = 8080,
    gateway: str = "mesh",
    source: Proxy | None = None,
) -> list[rc.Route]:
    snap, vs = load(http, extra, namespace)
    ctx = RouteContext(snap, namespace, port, gateway=gateway, source=source)
    return vs_routes(ctx, vs)


def one(http: str, **kwargs: object) -> rc.Route:
    (route,) = routes(http, **kwargs)  # type: ignore[arg-type]
    return route
