"""The resource models: valid resources of every kind and version, and their rules."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from plait.api import (
    DestinationRule,
    Duration,
    Gateway,
    ServiceEntry,
    VirtualService,
)
from plait.api.common import StringMatch
from plait.api.duration import DurationField
from plait.api.virtualservice import HTTPRoute

VERSIONS = ["networking.istio.io/v1", "networking.istio.io/v1beta1", "networking.istio.io/v1alpha3"]

# The reviews split of Istio's traffic-management docs, with v1/v2 subsets.
REVIEWS_VS = """
apiVersion: {version}
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts:
  - reviews
  http:
  - route:
    - destination:
        host: reviews
        subset: v1
      weight: 80
    - destination:
        host: reviews
        subset: v2
      weight: 20
"""

REVIEWS_DR = """
apiVersion: {version}
kind: DestinationRule
metadata:
  name: reviews-destination
spec:
  host: reviews.prod.svc.cluster.local
  trafficPolicy:
    loadBalancer:
      simple: LEAST_REQUEST
  subsets:
  - name: v1
    labels:
      version: v1
  - name: v2
    labels:
      version: v2
    trafficPolicy:
      loadBalancer:
        simple: ROUND_ROBIN
"""

# Istio's Gateway reference example (abridged): wildcard and namespaced hosts, TLS modes.
GATEWAY = """
apiVersion: {version}
kind: Gateway
metadata:
  name: my-gateway
  namespace: some-config-namespace
spec:
  selector:
    app: my-gateway-controller
  servers:
  - port:
      number: 80
      name: http
      protocol: HTTP
    hosts:
    - uk.bookinfo.com
    tls:
      httpsRedirect: true
  - port:
      number: 443
      name: https-443
      protocol: HTTPS
    hosts:
    - uk.bookinfo.com
    tls:
      mode: SIMPLE
      serverCertificate: /etc/certs/servercert.pem
      privateKey: /etc/certs/privatekey.pem
  - port:
      number: 9443
      name: https-9443
      protocol: HTTPS
    hosts:
    - "bookinfo-namespace/*.bookinfo.com"
    tls:
      mode: SIMPLE
      credentialName: bookinfo-secret
  - port:
      number: 9080
      name: http-wildcard
      protocol: HTTP
    hosts:
    - "*"
"""

SERVICE_ENTRY = """
apiVersion: {version}
kind: ServiceEntry
metadata:
  name: external-svc-mongocluster
spec:
  hosts:
  - mymongodb.somedomain
  addresses:
  - 192.192.192.192/24
  ports:
  - number: 27018
    name: mongodb
    protocol: MONGO
  location: MESH_INTERNAL
  resolution: STATIC
  endpoints:
  - address: 2.2.2.2
  - address: 3.3.3.3
    ports:
      mongodb: 27019
    labels:
      zone: b
    weight: 3
"""


def doc(template: str, version: str = "networking.istio.io/v1") -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(template.format(version=version))
    return loaded


def locs(exc: pytest.ExceptionInfo[ValidationError]) -> list[tuple[str | int, ...]]:
    return [tuple(e["loc"]) for e in exc.value.errors()]


@pytest.mark.parametrize("version", VERSIONS)
def test_reviews_split_in_every_version(version: str) -> None:
    vs = VirtualService.model_validate(doc(REVIEWS_VS, version))
    assert vs.api_version == version
    assert vs.metadata.namespace == "default"
    [rule] = vs.spec.http
    assert [(d.destination.subset, d.weight) for d in rule.route] == [("v1", 80), ("v2", 20)]
    assert rule.route[0].destination.port is None
    assert rule.timeout is None and rule.retries is None


@pytest.mark.parametrize("version", VERSIONS)
def test_destination_rule_subsets_in_every_version(version: str) -> None:
    dr = DestinationRule.model_validate(doc(REVIEWS_DR, version))
    assert dr.spec.host == "reviews.prod.svc.cluster.local"
    assert [(s.name, s.labels) for s in dr.spec.subsets] == [
        ("v1", {"version": "v1"}),
        ("v2", {"version": "v2"}),
    ]
    assert dr.spec.traffic_policy is not None
    assert dr.spec.traffic_policy.load_balancer is not None
    assert dr.spec.traffic_policy.load_balancer.simple == "LEAST_REQUEST"
    v2_policy = dr.spec.subsets[1].traffic_policy
    assert v2_policy is not None and v2_policy.load_balancer is not None
    assert v2_policy.load_balancer.simple == "ROUND_ROBIN"


@pytest.mark.parametrize("version", VERSIONS)
def test_gateway_with_wildcard_host_in_every_version(version: str) -> None:
    gw = Gateway.model_validate(doc(GATEWAY, version))
    assert gw.spec.selector == {"app": "my-gateway-controller"}
    assert [s.port.number for s in gw.spec.servers] == [80, 443, 9443, 9080]
    assert gw.spec.servers[3].hosts == ("*",)
    assert gw.spec.servers[0].tls is not None and gw.spec.servers[0].tls.https_redirect
    assert gw.spec.servers[0].tls.mode == "PASSTHROUGH"  # Istio's default
    assert gw.spec.servers[2].tls is not None
    assert gw.spec.servers[2].tls.credential_name == "bookinfo-secret"


@pytest.mark.parametrize("version", VERSIONS)
def test_service_entry_with_endpoints_in_every_version(version: str) -> None:
    se = ServiceEntry.model_validate(doc(SERVICE_ENTRY, version))
    assert se.spec.resolution == "STATIC" and se.spec.location == "MESH_INTERNAL"
    assert se.spec.ports[0].number == 27018 and se.spec.ports[0].target_port is None
    assert [e.address for e in se.spec.endpoints] == ["2.2.2.2", "3.3.3.3"]
    assert se.spec.endpoints[1].ports == {"mongodb": 27019}
    assert se.spec.endpoints[1].weight == 3


def test_service_entry_defaults_follow_istio() -> None:
    se = ServiceEntry.model_validate(
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "ServiceEntry",
            "metadata": {"name": "httpbin"},
            "spec": {"hosts": ["httpbin.org"], "ports": [{"number": 80, "name": "http"}]},
        }
    )
    assert (se.spec.location, se.spec.resolution) == ("MESH_EXTERNAL", "NONE")


def test_every_http_route_feature_parses_to_snake_case_attributes() -> None:
    rule = HTTPRoute.model_validate(
        {
            "name": "all",
            "match": [
                {
                    "name": "m",
                    "uri": {"prefix": "/api"},
                    "method": {"exact": "GET"},
                    "headers": {"x-user": {"regex": "a.*"}},
                    "queryParams": {"q": {"exact": "1"}},
                    "withoutHeaders": {"x-test": {"exact": "1"}},
                    "ignoreUriCase": True,
                    "sourceLabels": {"app": "web"},
                    "port": 8080,
                }
            ],
            "route": [
                {
                    "destination": {"host": "api", "subset": "v1", "port": {"number": 9080}},
                    "headers": {"request": {"set": {"x-a": "1"}, "remove": ["x-b"]}},
                }
            ],
            "rewrite": {"uriRegexRewrite": {"match": "^/api(/.*)", "rewrite": "\\1"}},
            "timeout": "1.5s",
            "retries": {"attempts": 3, "perTryTimeout": "500ms", "retryOn": "5xx,reset,503"},
            "fault": {
                "delay": {"fixedDelay": "7s", "percentage": {"value": 0.1}},
                "abort": {"httpStatus": 503, "percentage": {"value": 50}},
            },
            "mirror": {"host": "shadow"},
            "mirrorPercentage": {"value": 10.5},
            "corsPolicy": {"allowOrigins": [{"exact": "https://a.example"}], "maxAge": "24h"},
            "headers": {"response": {"add": {"x-served-by": "plait"}}},
        }
    )
    match = rule.match[0]
    assert match.uri is not None and (match.uri.match_type, match.uri.value) == ("prefix", "/api")
    assert match.headers["x-user"].regex == "a.*" and match.ignore_uri_case is True
    assert rule.route[0].destination.port is not None
    assert rule.route[0].destination.port.number == 9080
    assert rule.route[0].weight is None
    assert rule.timeout == "1.5s" and rule.timeout is not None and rule.timeout.seconds == 1.5
    assert rule.retries is not None and rule.retries.attempts == 3
    assert rule.retries.per_try_timeout is not None
    assert rule.retries.per_try_timeout.milliseconds == 500
    assert rule.retries.retry_on == "5xx,reset,503"
    assert rule.fault is not None and rule.fault.delay is not None
    assert rule.fault.delay.fixed_delay is not None and rule.fault.delay.fixed_delay.seconds == 7
    assert rule.fault.abort is not None and rule.fault.abort.http_status == 503
    assert rule.mirror_percentage is not None and rule.mirror_percentage.value == 10.5
    assert rule.cors_policy is not None and rule.cors_policy.max_age == "24h"


def test_redirect_direct_response_and_delegate_are_actions() -> None:
    redirect = HTTPRoute.model_validate({"redirect": {"uri": "/new", "redirectCode": 308}})
    assert redirect.redirect is not None and redirect.redirect.redirect_code == 308
    direct = HTTPRoute.model_validate({"directResponse": {"status": 503, "body": {"string": "x"}}})
    assert direct.direct_response is not None and direct.direct_response.status == 503
    delegate = HTTPRoute.model_validate({"delegate": {"name": "reviews", "namespace": "ns"}})
    assert delegate.delegate is not None and delegate.delegate.name == "reviews"


@pytest.mark.parametrize(
    ("rule", "words"),
    [
        ({}, "needs one of 'route', 'redirect', 'directResponse' or 'delegate'"),
        (
            {"route": [{"destination": {"host": "a"}}], "redirect": {"uri": "/b"}},
            "only one of 'route', 'redirect'",
        ),
        (
            {"directResponse": {"status": 200}, "delegate": {"name": "d"}},
            "only one of 'directResponse', 'delegate'",
        ),
        (
            {"redirect": {"uri": "/b"}, "rewrite": {"uri": "/c"}},
            "'redirect' cannot also have 'rewrite'",
        ),
        (
            {
                "route": [{"destination": {"host": "a"}}],
                "mirror": {"host": "m"},
                "mirrors": [{"destination": {"host": "n"}}],
            },
            "either 'mirror' or 'mirrors'",
        ),
        (
            {"route": [{"destination": {"host": "a"}}, {"destination": {"host": "b"}}]},
            "no weight in total",
        ),
    ],
)
def test_http_rule_oneof_and_conflicts(rule: dict[str, Any], words: str) -> None:
    with pytest.raises(ValidationError) as exc:
        HTTPRoute.model_validate(rule)
    assert words in str(exc.value)
    assert locs(exc) == [()]


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ({"exact": "/a"}, True),
        ({"prefix": ""}, True),
        ({"regex": "^/a"}, True),
        ({}, False),
        ({"exact": "/a", "prefix": "/a"}, False),
    ],
)
def test_string_match_needs_exactly_one(value: dict[str, str], ok: bool) -> None:
    if ok:
        assert StringMatch.model_validate(value).value == next(iter(value.values()))
    else:
        with pytest.raises(ValidationError, match="'exact', 'prefix' or 'regex'"):
            StringMatch.model_validate(value)


@pytest.mark.parametrize(
    ("text", "nanos"),
    [
        ("1s", 10**9),
        ("500ms", 5 * 10**8),
        ("1.5s", 15 * 10**8),
        ("1m", 60 * 10**9),
        ("1h", 3600 * 10**9),
        ("1h30m", 5400 * 10**9),
        (".5s", 5 * 10**8),
        ("250us", 250_000),
    ],
)
def test_duration_parses_go_syntax(text: str, nanos: int) -> None:
    duration = Duration(text)
    assert duration.nanos == nanos
    assert duration == text and str(duration) == text
    assert duration.seconds == nanos / 1e9
    assert duration.seconds_nanos() == divmod(nanos, 10**9)


@pytest.mark.parametrize("text", ["", "1", "s", "1 s", "-1s", "1d", "1.5", "abc", "1s2"])
def test_duration_rejects_other_text(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        Duration(text)


def test_duration_fields_need_whole_milliseconds_of_at_least_1ms() -> None:
    from pydantic import TypeAdapter

    adapter: TypeAdapter[Duration] = TypeAdapter(DurationField)
    assert adapter.validate_python("1ms").milliseconds == 1
    assert adapter.dump_python(adapter.validate_python("2m")) == "2m"
    for bad, words in [("0s", "at least 1ms"), ("1500us", "ms precision"), (5, "'5s'")]:
        with pytest.raises(ValidationError, match=words):
            adapter.validate_python(bad)


def test_destination_rule_oneofs_and_unique_subsets() -> None:
    base = doc(REVIEWS_DR)
    base["spec"]["trafficPolicy"]["loadBalancer"] = {
        "simple": "RANDOM",
        "consistentHash": {"useSourceIp": True},
    }
    with pytest.raises(ValidationError, match="only one of 'simple' or 'consistentHash'") as exc:
        DestinationRule.model_validate(base)
    assert locs(exc) == [("spec", "trafficPolicy", "loadBalancer")]

    dup = doc(REVIEWS_DR)
    dup["spec"]["subsets"][1]["name"] = "v1"
    with pytest.raises(ValidationError, match="subset name 'v1' is used more than once"):
        DestinationRule.model_validate(dup)


def test_destination_rule_accepts_the_full_traffic_policy() -> None:
    policy = {
        "loadBalancer": {
            "consistentHash": {"httpCookie": {"name": "user", "ttl": "0s"}, "ringHash": {}},
            "localityLbSetting": {"enabled": True, "failover": [{"from": "us", "to": "eu"}]},
            "warmupDurationSecs": "10s",
        },
        "connectionPool": {
            "tcp": {
                "maxConnections": 100,
                "connectTimeout": "30ms",
                "tcpKeepalive": {"time": "7200s", "interval": "75s"},
            },
            "http": {
                "http2MaxRequests": 1000,
                "maxRequestsPerConnection": 10,
                "h2UpgradePolicy": "UPGRADE",
            },
        },
        "outlierDetection": {
            "consecutive5xxErrors": 7,
            "interval": "5m",
            "baseEjectionTime": "15m",
            "maxEjectionPercent": 50,
        },
        "tls": {"mode": "ISTIO_MUTUAL", "sni": "reviews"},
        "portLevelSettings": [
            {"port": {"number": 80}, "loadBalancer": {"simple": "LEAST_REQUEST"}}
        ],
        "tunnel": {"targetHost": "proxy", "targetPort": 8080},
        "proxyProtocol": {"version": "V2"},
    }
    spec = doc(REVIEWS_DR)
    spec["spec"]["trafficPolicy"] = policy
    tp = DestinationRule.model_validate(spec).spec.traffic_policy
    assert tp is not None and tp.outlier_detection is not None
    assert tp.outlier_detection.consecutive_5xx_errors == 7
    assert tp.load_balancer is not None and tp.load_balancer.locality_lb_setting is not None
    assert tp.load_balancer.locality_lb_setting.failover[0].from_ == "us"
    assert tp.connection_pool is not None and tp.connection_pool.tcp is not None
    assert tp.connection_pool.tcp.connect_timeout == "30ms"
    assert tp.tls is not None and tp.tls.mode == "ISTIO_MUTUAL"
    assert tp.port_level_settings[0].port.number == 80


def test_gateway_rules() -> None:
    https_without_tls = doc(GATEWAY)
    del https_without_tls["spec"]["servers"][1]["tls"]
    with pytest.raises(ValidationError, match="HTTPS server needs 'tls'") as exc:
        Gateway.model_validate(https_without_tls)
    assert locs(exc) == [("spec", "servers", 1)]

    same_name = doc(GATEWAY)
    same_name["spec"]["servers"][3]["port"]["name"] = "http"
    with pytest.raises(ValidationError, match="port name 'http' is used by more than one"):
        Gateway.model_validate(same_name)

    no_cert = doc(GATEWAY)
    del no_cert["spec"]["servers"][2]["tls"]["credentialName"]
    with pytest.raises(ValidationError, match="SIMPLE TLS needs a certificate"):
        Gateway.model_validate(no_cert)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"resolution": "NONE"}, "resolution NONE cannot have 'endpoints'"),
        (
            {"workloadSelector": {"labels": {"app": "db"}}},
            "either 'endpoints' or 'workloadSelector'",
        ),
        ({"resolution": "DNS"}, "CIDR 'addresses' need resolution NONE or STATIC"),
        ({"hosts": ["*"]}, "host '*' is not allowed"),
        ({"endpoints": [{"address": "db.example.com"}]}, "not an IP address"),
        ({"ports": [{"number": 1, "name": "a"}, {"number": 1, "name": "b"}]}, "port number 1"),
    ],
)
def test_service_entry_rules(change: dict[str, Any], words: str) -> None:
    entry = doc(SERVICE_ENTRY)
    entry["spec"].update(change)
    with pytest.raises(ValidationError, match=re.escape(words)):
        ServiceEntry.model_validate(entry)


def test_models_are_frozen() -> None:
    vs = VirtualService.model_validate(doc(REVIEWS_VS))
    with pytest.raises(ValidationError):
        vs.metadata.name = "other"  # type: ignore[misc]
    assert isinstance(vs.spec.http, tuple)


@pytest.mark.parametrize("template", [REVIEWS_VS, REVIEWS_DR, GATEWAY, SERVICE_ENTRY])
def test_dump_by_alias_gives_back_the_yaml(template: str) -> None:
    raw = doc(template)
    model = {
        "VirtualService": VirtualService,
        "DestinationRule": DestinationRule,
        "Gateway": Gateway,
        "ServiceEntry": ServiceEntry,
    }[raw["kind"]]
    dumped = model.model_validate(raw).model_dump(by_alias=True, exclude_unset=True, mode="json")
    assert dumped == raw


def test_durations_dump_as_the_text_written() -> None:
    rule = HTTPRoute.model_validate(
        {
            "route": [{"destination": {"host": "a"}}],
            "timeout": "1m30s",
            "retries": {"perTryTimeout": "250ms"},
        }
    )
    assert rule.model_dump(by_alias=True, exclude_unset=True, mode="json") == {
        "route": [{"destination": {"host": "a"}}],
        "timeout": "1m30s",
        "retries": {"perTryTimeout": "250ms"},
    }
    assert rule.timeout is not None and rule.timeout.seconds == 90
