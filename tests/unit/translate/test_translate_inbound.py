"""The sidecar's inbound route table."""

from __future__ import annotations

from envoy.config.core.v3 import base_pb2

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
