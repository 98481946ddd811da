"""Understood but not applied: one warning per highest field the translator ignores."""

from __future__ import annotations

from typing import Any, get_args, get_origin

import pytest
from pydantic import BaseModel

from plait.api import APPLIED, KINDS, Loaded, Source, load_text, unapplied_warnings
from plait.api.applied import NOT_APPLIED
from plait.api.messages import _unwrap
from plait.api.virtualservice import VirtualService
from plait.errors import Severity

VS = """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
  namespace: shop
  labels: {app: reviews}
spec:
  hosts: [reviews]
  exportTo: ["."]
  http:
  - name: split
    match:
    - uri: {prefix: /api}
      headers: {x-user: {exact: jason}}
      queryParams: {debug: {exact: "1"}}
    route:
    - destination: {host: reviews, subset: v1, port: {number: 9080}}
      weight: 80
      headers: {request: {set: {x-a: "1"}}}
    - destination: {host: reviews, subset: v2}
      weight: 20
    timeout: 2s
    retries: {attempts: 3, perTryTimeout: 1s, retryOn: 5xx, retryRemoteLocalities: true}
    fault:
      delay: {exponentialDelay: 5s, percentage: {value: 10}}
      abort: {http2Error: CANCEL}
  tcp:
  - match: [{destinationSubnets: [10.0.0.0/8]}]
    route: [{destination: {host: reviews}}]
"""


def test_unapplied_fields_get_one_warning_each_at_the_highest_path() -> None:
    result = load_text(VS, "vs.yaml")
    assert result.errors == ()
    assert [m.path for m in result.warnings] == [
        "spec.http[0].fault.delay.exponentialDelay",
        "spec.http[0].fault.abort.http2Error",
        "spec.tcp[0].match[0].destinationSubnets",
    ]
    first = result.warnings[0]
    assert (first.file, first.document, first.kind, first.name, first.severity) == (
        "vs.yaml",
        0,
        "VirtualService",
        "reviews",
        Severity.WARNING,
    )
    assert first.message == f"'exponentialDelay' is {NOT_APPLIED}"
    assert NOT_APPLIED == "understood but not applied yet by plait; it has no effect"


def test_unapplied_warnings_of_a_loaded_resource() -> None:
    vs = load_text(VS, "vs.yaml").resources[0]
    moved = Loaded(vs.resource, Source("other.yaml", 4))
    warnings = unapplied_warnings(moved)
    assert {(m.file, m.document) for m in warnings} == {("other.yaml", 4)}
    assert len(warnings) == 3  # exponentialDelay, http2Error, destinationSubnets


def test_nothing_to_warn_about_for_applied_fields_and_kube_kinds() -> None:
    text = """apiVersion: networking.istio.io/v1alpha3
kind: ServiceEntry
metadata: {name: ext}
spec:
  hosts: [api.example.com]
  ports: [{number: 443, name: tls, protocol: TLS, targetPort: 8443}]
  location: MESH_EXTERNAL
  resolution: DNS
  endpoints: [{address: a.example.com, ports: {tls: 9443}, labels: {zone: a}}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080, nodePort: 30080}]
"""
    result = load_text(text, "x.yaml")
    assert result.messages == ()
    assert len(result.resources) == 2


def test_gateway_tls_and_destination_rule_policy_are_not_applied_yet() -> None:
    text = """apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: ["*"]
    tls: {mode: SIMPLE, credentialName: cert}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: dr}
spec:
  host: reviews
  trafficPolicy: {connectionPool: {tcp: {maxConnections: 1}}, tunnel: {targetHost: h, targetPort: 80}}
  subsets:
  - name: v1
    labels: {version: v1}
    trafficPolicy: {loadBalancer: {simple: RANDOM, localityLbSetting: {enabled: true}}}
"""
    result = load_text(text, "x.yaml")
    assert [(m.document, m.path) for m in result.warnings] == [
        (0, "spec.servers[0].tls.credentialName"),
        (1, "spec.trafficPolicy.tunnel"),
        (1, "spec.subsets[0].trafficPolicy.loadBalancer.localityLbSetting"),
    ]


def model_paths(model: type[BaseModel]) -> set[str]:
    """Every YAML path of a model class, with [] for list items."""
    out: set[str] = set()

    def walk(tp: Any, prefix: str) -> None:
        tp = _unwrap(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            for name, field in tp.model_fields.items():
                path = f"{prefix}.{field.alias or name}" if prefix else field.alias or name
                out.add(path)
                walk(field.annotation, path)
        elif get_origin(tp) in (tuple, list):
            out.add(prefix + "[]")
            walk(get_args(tp)[0], prefix + "[]")

    walk(model, "")
    return out


@pytest.mark.parametrize("kind", sorted(APPLIED))
def test_every_applied_path_exists_in_the_model(kind: str) -> None:
    model = KINDS[kind].model
    assert model is not None
    known = model_paths(model)
    for path in APPLIED[kind]:
        assert path.removesuffix(".*") in known, f"{kind}: {path}"


def test_the_table_covers_the_translated_virtual_service_fields() -> None:
    assert "spec.http[].route[].weight" in APPLIED["VirtualService"]
    assert "spec.http[].retries.perTryTimeout" in APPLIED["VirtualService"]
    assert VirtualService.model_fields["spec"].alias == "spec"
