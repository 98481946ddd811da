"""RateLimit → local rate limit config: who is selected, buckets, routes, Envoy's verdict."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from envoy.extensions.filters.http.local_ratelimit.v3 import local_rate_limit_pb2 as lrl
from envoy.type.v3 import token_bucket_pb2
from google.protobuf import json_format
from test_translate_envoy_validate import assert_envoy_accepts
from translate_kit import REVIEWS_SERVICE, hcms, listeners, routes, sidecar, snapshot

from plait.api.ratelimit import RateLimit
from plait.model.labels import Labels
from plait.model.proxy import Proxy, ProxyKind
from plait.model.snapshot import MeshSnapshot
from plait.translate import ratelimit
from plait.translate.httpfilters import LOCAL_RATELIMIT
from plait.translate.proxy import Translator


def rate_limit(name: str, spec: str, namespace: str = "default") -> str:
    return f"""---
apiVersion: policy.plait.dev/v1alpha1
kind: RateLimit
metadata: {{name: {name}, namespace: {namespace}}}
spec:
{spec}"""


SEARCH = rate_limit(
    "reviews",
    """  selector: {matchLabels: {app: reviews}}
  limits:
  - name: search
    match: [{uri: {prefix: /search}}, {method: {exact: POST}, headers: {x-a: {prefix: ""}}}]
    requests: 10
    unit: minute
  - match: [{uri: {regex: "/items/[0-9]+"}}]
    requests: 3
    interval: 250ms
    burst: 7
  - requests: 20
    unit: second
""",
)


def reviews(instance: str = "reviews-v1-0", namespace: str = "default", **labels: str) -> Proxy:
    return dataclasses.replace(
        sidecar(instance, namespace=namespace),
        labels=Labels.of(labels or {"app": "reviews", "version": "v1"}),
    )


def bucket(max_tokens: int, per_fill: int, ms: int) -> token_bucket_pb2.TokenBucket:
    return json_format.ParseDict(
        {"max_tokens": max_tokens, "tokens_per_fill": per_fill, "fill_interval": f"{ms / 1000}s"},
        token_bucket_pb2.TokenBucket(),
    )


def selected(snap: MeshSnapshot, proxy: Proxy) -> list[str]:
    return [r.metadata.name for r in ratelimit.limits_for(snap, proxy)]


def test_selector_target_ref_and_namespace_decide_who_enforces() -> None:
    snap = snapshot(
        REVIEWS_SERVICE
        + rate_limit(
            "by-labels",
            "  selector: {matchLabels: {version: v2}}\n  limits: [{requests: 1, unit: second}]\n",
        )
        + rate_limit(
            "by-service",
            "  targetRef: {kind: Service, name: reviews}\n  limits: [{requests: 1, unit: second}]\n",
        )
        + rate_limit(
            "no-service",
            "  targetRef: {kind: Service, name: nowhere}\n  limits: [{requests: 1, unit: second}]\n",
        )
        + rate_limit("namespace", "  limits: [{requests: 1, unit: second}]\n", namespace="team")
    )
    assert selected(snap, reviews(version="v2", app="reviews")) == ["by-labels", "by-service"]
    assert selected(snap, reviews(version="v1", app="reviews")) == ["by-service"]
    assert selected(snap, reviews(app="ratings")) == []
    assert selected(snap, reviews("x-0", namespace="team", app="x")) == ["namespace"]
    gateway = dataclasses.replace(reviews(), kind=ProxyKind.GATEWAY)
    assert selected(snap, gateway) == []


def limits_of(text: str) -> ratelimit.InboundLimits:
    rls = [
        item.resource
        for item in snapshot(REVIEWS_SERVICE + text).rate_limits
        if isinstance(item.resource, RateLimit)
    ]
    out = ratelimit.inbound_limits(rls)
    assert out is not None
    return out


def test_each_limit_gets_one_bucket_and_its_matches_name_it() -> None:
    limits = limits_of(SEARCH)
    config = limits.config
    assert config.stat_prefix == "http_local_rate_limiter"
    assert config.status.code == 429
    assert config.filter_enabled.default_value.numerator == 100
    assert config.filter_enforced.default_value.numerator == 100
    assert config.enable_x_ratelimit_headers == 1  # DRAFT_VERSION_03
    assert config.always_consume_default_token_bucket.value is False
    # the service-wide limit is the default bucket; each matched limit a descriptor
    assert config.token_bucket == bucket(20, 20, 1000)
    keys = [d.entries[0].value for d in config.descriptors]
    assert keys == ["default/reviews/search", "default/reviews/limits[1]"]
    assert [d.entries[0].key for d in config.descriptors] == [ratelimit.DESCRIPTOR_KEY] * 2
    assert config.descriptors[0].token_bucket == bucket(10, 10, 60_000)
    assert config.descriptors[1].token_bucket == bucket(7, 3, 250)
    # the descriptor comes from the matched route's metadata
    (action,) = config.rate_limits[0].actions
    assert action.metadata.metadata_key.key == ratelimit.METADATA_NAMESPACE
    assert action.metadata.skip_if_absent
    names = [r.name for r in limits.routes]
    assert names == [
        "default/reviews/search/match[0]",
        "default/reviews/search/match[1]",
        "default/reviews/limits[1]/match[0]",
    ]
    tags = [
        r.metadata.filter_metadata[ratelimit.METADATA_NAMESPACE][ratelimit.METADATA_FIELD]
        for r in limits.routes
    ]
    assert tags == [keys[0], keys[0], keys[1]]
    assert limits.catch_all_limited


def test_route_matches_follow_uri_method_and_headers() -> None:
    first, second, third = limits_of(SEARCH).routes
    assert first.match.prefix == "/search" and not first.match.headers
    assert second.match.prefix == "/"
    assert [(h.name, h.WhichOneof("header_match_specifier")) for h in second.match.headers] == [
        ("x-a", "present_match"),
        (":method", "string_match"),
    ]
    assert second.match.headers[1].string_match.exact == "POST"
    assert third.match.safe_regex.regex == "/items/[0-9]+"
    exact = limits_of(
        rate_limit("e", "  limits: [{requests: 1, unit: second, match: [{uri: {exact: /a}}]}]\n")
    ).routes[0]
    assert exact.match.path == "/a"


def test_several_rate_limits_combine_matched_limits_first_then_one_service_wide() -> None:
    text = rate_limit(
        "a",
        "  statusCode: 503\n  limits:\n"
        "  - {requests: 1, unit: second, match: [{uri: {prefix: /a}}]}\n"
        "  - {requests: 5, unit: second}\n",
    ) + rate_limit(
        "b",
        "  limits:\n"
        "  - {requests: 2, unit: second, match: [{uri: {prefix: /b}}]}\n"
        "  - {requests: 9, unit: second}\n",
    )
    limits = limits_of(text)
    assert [r.name for r in limits.routes] == [
        "default/a/limits[0]/match[0]",
        "default/b/limits[0]/match[0]",
    ]
    assert limits.config.token_bucket.max_tokens == 5  # a's service-wide limit; b's never applies
    assert limits.config.status.code == 503  # one config holds every bucket: the first decides


def test_without_a_service_wide_limit_the_catch_all_is_not_limited() -> None:
    limits = limits_of(
        rate_limit("r", "  limits: [{requests: 1, unit: second, match: [{uri: {prefix: /a}}]}]\n")
    )
    assert not limits.catch_all_limited
    assert ratelimit.inbound_limits([]) is None


def inbound_vhost_config(proxy: Proxy, text: str) -> lrl.LocalRateLimit | None:
    config = Translator(snapshot(REVIEWS_SERVICE + text)).config_for(proxy)
    (name,) = {h.rds.route_config_name for h in hcms(listeners(config)["virtualInbound"])}
    (vhost,) = routes(config)[name].virtual_hosts
    if LOCAL_RATELIMIT not in vhost.typed_per_filter_config:
        return None
    out = lrl.LocalRateLimit()
    assert vhost.typed_per_filter_config[LOCAL_RATELIMIT].Unpack(out)
    return out


def test_the_translator_gives_limits_only_to_selected_sidecars() -> None:
    config = inbound_vhost_config(reviews(), SEARCH)
    assert config is not None and len(config.descriptors) == 2
    assert inbound_vhost_config(reviews(app="ratings"), SEARCH) is None


def test_envoy_accepts_the_rate_limited_inbound_config(tmp_path: Path) -> None:
    text = (
        REVIEWS_SERVICE
        + SEARCH
        + rate_limit(
            "only-routes",
            "  selector: {matchLabels: {app: reviews}}\n  limits:\n"
            "  - {requests: 1, interval: 50ms, match: [{headers: {x-b: {regex: 'a.*'}}}]}\n",
        )
    )
    assert_envoy_accepts(tmp_path, Translator(snapshot(text)).config_for(reviews()))
