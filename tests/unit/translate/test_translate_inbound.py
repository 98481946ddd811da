"""The sidecar's inbound route table: the app, and the routes of rate limits."""

from __future__ import annotations

from envoy.config.core.v3 import base_pb2
from envoy.config.route.v3 import route_components_pb2 as rc

from plait.api import load_text
from plait.api.ratelimit import RateLimit
from plait.translate.httpfilters import LOCAL_RATELIMIT
from plait.translate.inbound import SIDECAR_HEADER, inbound_routes


def test_inbound_routes_send_everything_to_the_app_and_name_the_sidecar() -> None:
    config = inbound_routes(9080, "sidecar~reviews-v1-0.default")
    assert config.name == "inbound|9080||"
    (header,) = config.request_headers_to_add
    assert (header.header.key, header.header.value) == (
        SIDECAR_HEADER,
        "sidecar~reviews-v1-0.default",
    )
    assert header.append_action == base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD
    (vhost,) = config.virtual_hosts
    assert list(vhost.domains) == ["*"]
    (route,) = vhost.routes
    assert route.match.prefix == "/"
    assert route.route.cluster == "inbound|9080||"


def rate_limits(text: str) -> list[RateLimit]:
    return [
        i.resource
        for i in load_text(text, "rl.yaml").resources
        if isinstance(i.resource, RateLimit)
    ]


LIMITED = """apiVersion: policy.plait.dev/v1alpha1
kind: RateLimit
metadata: {name: rl}
spec:
  limits:
  - {name: a, requests: 1, unit: second, match: [{uri: {prefix: /a}}, {uri: {exact: /b}}]}
"""


def test_limited_routes_come_first_and_the_catch_all_is_not_limited() -> None:
    (vhost,) = inbound_routes(9080, "sidecar~r-0.default", rate_limits(LIMITED)).virtual_hosts
    assert [r.name for r in vhost.routes] == [
        "default/rl/a/match[0]",
        "default/rl/a/match[1]",
        "default",
    ]
    assert all(r.route.cluster == "inbound|9080||" for r in vhost.routes)
    assert [r.match.WhichOneof("path_specifier") for r in vhost.routes] == [
        "prefix",
        "path",
        "prefix",
    ]
    assert LOCAL_RATELIMIT in vhost.typed_per_filter_config
    assert all(r.HasField("metadata") for r in vhost.routes[:2])
    catch_all = rc.FilterConfig()
    assert vhost.routes[-1].typed_per_filter_config[LOCAL_RATELIMIT].Unpack(catch_all)
    assert catch_all.disabled


def test_a_service_wide_limit_keeps_the_filter_on_for_the_catch_all() -> None:
    text = LIMITED + "  - {requests: 5, unit: second}\n"
    (vhost,) = inbound_routes(9080, "sidecar~r-0.default", rate_limits(text)).virtual_hosts
    assert vhost.routes[-1].name == "default"
    assert not vhost.routes[-1].typed_per_filter_config
    assert not vhost.routes[-1].HasField("metadata")


def test_without_rate_limits_no_filter_config_is_set() -> None:
    (vhost,) = inbound_routes(9080, "sidecar~r-0.default").virtual_hosts
    assert not vhost.typed_per_filter_config
    assert not vhost.routes[0].typed_per_filter_config
