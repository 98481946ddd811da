"""Envoy accepts every route feature plait translates, and plait warns about none of them."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_translate_envoy_validate import assert_envoy_accepts
from translate_kit import REVIEWS_SERVICE, gateway, sidecar, snapshot

from plait.api import load_text
from plait.model.labels import Labels
from plait.model.proxy import Proxy
from plait.translate.proxy import Translator

EVERY_FEATURE = """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews, shop.example]
  gateways: [mesh, shop-gateway]
  http:
  - name: matches
    match:
    - name: all
      uri: {prefix: /api/}
      ignoreUriCase: true
      scheme: {exact: http}
      method: {regex: "GET|HEAD"}
      authority: {prefix: reviews}
      headers: {x-user: {exact: jason}, x-any: {regex: "*"}, x-p: {prefix: ""}}
      withoutHeaders: {x-beta: {exact: "on"}, x-debug: {regex: "*"}}
      queryParams: {v: {regex: "[12]"}, u: {exact: a}, d: {regex: "*"}, p: {prefix: x}}
      port: 8080
      sourceLabels: {app: frontend}
      sourceNamespace: default
      statPrefix: api
    - uri: {exact: /exact}
      gateways: [shop-gateway, mesh]
    - uri: {regex: "/items/[0-9]+"}
    route:
    - destination: {host: reviews, subset: v1}
      weight: 80
      headers:
        request: {set: {x-a: "1", host: v1.example}, add: {x-b: "2"}, remove: [x-c]}
        response: {set: {x-d: "1"}, add: {x-e: "2"}, remove: [x-f]}
    - destination: {host: reviews, subset: v2, port: {number: 8080}}
      weight: 20
    headers:
      request: {set: {":authority": a.example, x-g: "1"}, remove: [":path", x-h]}
      response: {add: {x-i: "1"}}
    rewrite: {uri: /v1/api/, authority: internal.example}
    timeout: 2s
    retries:
      attempts: 3
      perTryTimeout: 500ms
      retryOn: "5xx,gateway-error,reset,connect-failure,refused-stream,retriable-4xx,503,cancelled,deadline-exceeded,internal,resource-exhausted,unavailable"
      retryRemoteLocalities: true
      retryIgnorePreviousHosts: false
      backoff: 25ms
    fault:
      delay: {fixedDelay: 1s, percentage: {value: 0.5}}
      abort: {httpStatus: 503, percentage: {value: 12.5}}
    mirror: {host: reviews, subset: v2}
    mirrorPercentage: {value: 33.3}
    corsPolicy:
      allowOrigins: [{exact: "https://a.example"}, {prefix: "https://b."}, {regex: ".*[.]test"}]
      allowMethods: [GET, POST]
      allowHeaders: [x-user]
      exposeHeaders: [x-trace]
      maxAge: 1h
      allowCredentials: true
      unmatchedPreflights: IGNORE
  - match: [{uri: {prefix: /grpc}}]
    route: [{destination: {host: reviews}, headers: {request: {set: {host: g.example}}}}]
    rewrite: {uriRegexRewrite: {match: "^/grpc/(.*)$", rewrite: '/\\1'}}
    retries: {attempts: 0}
    fault: {delay: {fixedDelay: 10ms, percent: 5}, abort: {grpcStatus: UNAVAILABLE}}
    mirrors:
    - destination: {host: reviews, subset: v1}
      percentage: {value: 1}
    - destination: {host: reviews}
    mirrorPercent: 50
    corsPolicy: {allowOrigin: ["https://old.example"]}
  - match: [{uri: {prefix: /moved}}]
    redirect: {uri: /new, authority: shop.example, scheme: https, port: 8443, redirectCode: 308}
  - match: [{uri: {prefix: /derived}}]
    redirect: {derivePort: FROM_REQUEST_PORT, redirectCode: 302}
  - match: [{uri: {exact: /teapot}}]
    directResponse: {status: 418, body: {string: "short and stout"}}
  - match: [{uri: {exact: /bytes}}]
    directResponse: {status: 200, body: {bytes: aGVsbG8=}}
  - match: [{uri: {prefix: /delegated}}]
    delegate: {name: child}
  - route: [{destination: {host: reviews, subset: v1}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: child}
spec:
  http:
  - match: [{uri: {prefix: /delegated/x}}]
    route: [{destination: {host: reviews, subset: v2}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: shop-gateway}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*"]
"""

FRONTEND = sidecar("frontend-0")


@pytest.mark.parametrize(
    "proxy",
    [FRONTEND, sidecar("reviews-v1-0"), gateway((80, 8080))],
    ids=["sidecar-frontend", "sidecar-other", "gateway"],
)
def test_envoy_accepts_every_route_feature(tmp_path: Path, proxy: Proxy) -> None:
    assert_envoy_accepts(
        tmp_path, Translator(snapshot(REVIEWS_SERVICE + EVERY_FEATURE)).config_for(proxy)
    )


def test_the_frontend_gets_the_source_matched_route() -> None:
    assert FRONTEND.labels == Labels.of({"app": "frontend"})
    config = Translator(snapshot(REVIEWS_SERVICE + EVERY_FEATURE)).config_for(FRONTEND)
    from translate_kit import routes

    table = routes(config)["outbound"]
    vhost = next(v for v in table.virtual_hosts if v.name.startswith("reviews."))
    assert vhost.routes[0].name == "default/reviews/http[0]/match[0]"
    assert vhost.routes[0].stat_prefix == "api"


def test_no_route_field_is_reported_as_not_applied() -> None:
    result = load_text(REVIEWS_SERVICE + EVERY_FEATURE, "every.yaml")
    assert not result.errors, [str(m) for m in result.errors]
    assert [m.path for m in result.warnings] == []


def test_fields_istio_does_not_apply_either_are_reported() -> None:
    text = """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route: [{destination: {host: reviews}}]
    fault:
      delay: {exponentialDelay: 1s}
      abort: {http2Error: REFUSED_STREAM}
"""
    result = load_text(text, "vs.yaml")
    assert [m.path for m in result.warnings] == [
        "spec.http[0].fault.delay.exponentialDelay",
        "spec.http[0].fault.abort.http2Error",
    ]
