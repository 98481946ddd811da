"""Access logs: a JSON file log on every HCM of a proxy that has a log file, none otherwise."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from envoy.config.accesslog.v3 import accesslog_pb2
from envoy.extensions.access_loggers.file.v3 import file_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from google.protobuf import json_format as pb_json
from google.protobuf import struct_pb2
from test_translate_envoy_validate import assert_envoy_accepts, shop_snapshot
from test_translate_gatewaylisteners import TWO_SERVERS, mesh
from translate_kit import REVIEWS_SERVICE, gateway, hcms, listeners, sidecar, snapshot

from plait.model.proxy import Proxy, from_node_metadata, to_node_metadata
from plait.translate import accesslog
from plait.translate.accesslog import Direction
from plait.translate.proxy import Translator

LOG = "/var/log/plait/frontend-0.access.log"

# What the issue and Istio's default JSON format ask every line to carry.
REQUIRED = {
    "start_time": "%START_TIME%",
    "method": "%REQ(:METHOD)%",
    "path": "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%",
    "protocol": "%PROTOCOL%",
    "response_code": "%RESPONSE_CODE%",
    "response_flags": "%RESPONSE_FLAGS%",
    "response_code_details": "%RESPONSE_CODE_DETAILS%",
    "duration": "%DURATION%",
    "bytes_received": "%BYTES_RECEIVED%",
    "bytes_sent": "%BYTES_SENT%",
    "upstream_host": "%UPSTREAM_HOST%",
    "upstream_cluster": "%UPSTREAM_CLUSTER_RAW%",
    "upstream_service_time": "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%",
    "x_forwarded_for": "%REQ(X-FORWARDED-FOR)%",
    "user_agent": "%REQ(USER-AGENT)%",
    "request_id": "%REQ(X-REQUEST-ID)%",
    "authority": "%REQ(:AUTHORITY)%",
    "route_name": "%ROUTE_NAME%",
    "downstream_peer_uri_san": "%DOWNSTREAM_PEER_URI_SAN%",
    "downstream_local_uri_san": "%DOWNSTREAM_LOCAL_URI_SAN%",
    "upstream_peer_uri_san": "%UPSTREAM_PEER_URI_SAN%",
    "trace_id": "%TRACE_ID%",
    "traceparent": "%REQ(TRACEPARENT)%",
    "x_b3_traceid": "%REQ(X-B3-TRACEID)%",
}


def logs_of(h: hcm_pb2.HttpConnectionManager) -> list[tuple[str, dict[str, object]]]:
    """(path, json_format) of each file access log on an HCM (the stats logger that
    counts Istio's metrics is `translate.metrics`')."""
    out = []
    for log in h.access_log:
        if log.name == "envoy.access_loggers.stats":
            continue
        assert log.name == "envoy.access_loggers.file"
        file_log = file_pb2.FileAccessLog()
        assert log.typed_config.Unpack(file_log)
        out.append((file_log.path, pb_json.MessageToDict(file_log.log_format.json_format)))
    return out


def with_log(proxy: Proxy, path: str = LOG) -> Proxy:
    return dataclasses.replace(proxy, access_log=path)


def test_json_format_has_istio_names_identities_trace_context_and_constants() -> None:
    fmt = pb_json.MessageToDict(accesslog.json_format(Direction.INBOUND, "sidecar~a-0.default"))
    assert {k: fmt[k] for k in REQUIRED} == REQUIRED
    assert fmt["direction"] == "inbound"
    assert fmt["proxy"] == "sidecar~a-0.default"


def test_access_log_is_envoys_file_logger_with_a_json_format() -> None:
    log = accesslog.access_log("/tmp/x.log", Direction.GATEWAY, "gw")
    assert isinstance(log, accesslog_pb2.AccessLog)
    ((path, fmt),) = logs_of(hcm_pb2.HttpConnectionManager(access_log=[log]))
    assert path == "/tmp/x.log"
    assert fmt["direction"] == "gateway"


def test_a_proxy_name_with_a_percent_sign_is_refused() -> None:
    with pytest.raises(ValueError, match="command operator"):
        accesslog.json_format(Direction.OUTBOUND, "a%b")


def test_the_log_path_travels_in_node_metadata() -> None:
    proxy = with_log(sidecar())
    meta = pb_json.MessageToDict(pb_json.ParseDict(to_node_metadata(proxy), struct_pb2.Struct()))
    assert meta["PLAIT_ACCESS_LOG"] == LOG
    assert from_node_metadata(proxy.id, meta) == proxy
    assert "PLAIT_ACCESS_LOG" not in to_node_metadata(sidecar())


def test_every_sidecar_hcm_logs_to_the_proxys_file_with_its_direction() -> None:
    config = Translator(snapshot(REVIEWS_SERVICE)).config_for(with_log(sidecar()))
    seen: dict[str, set[object]] = {}
    for name, listener in listeners(config).items():
        for h in hcms(listener):
            ((path, fmt),) = logs_of(h)
            assert path == LOG
            assert fmt["proxy"] == "sidecar~frontend-0.default"
            seen.setdefault(name, set()).add(fmt["direction"])
    # the inbound listener has two chains (mTLS and plain text), both logged
    assert len(hcms(listeners(config)["virtualInbound"])) == 2
    assert seen == {"virtualOutbound": {"outbound"}, "virtualInbound": {"inbound"}}


def test_every_gateway_hcm_is_logged_plain_text_and_https(tmp_path: Path) -> None:
    proxy = with_log(gateway((80, 8080), (443, 8443)), "/logs/gw.access.log")
    config = Translator(mesh(tmp_path, TWO_SERVERS)).config_for(proxy)
    all_hcms = [h for lis in listeners(config).values() for h in hcms(lis)]
    assert len(all_hcms) == 3  # port 80, and one TLS chain per server on 443
    for h in all_hcms:
        assert [(p, f["direction"]) for p, f in logs_of(h)] == [("/logs/gw.access.log", "gateway")]


def test_a_proxy_without_a_log_file_gets_no_file_access_log(tmp_path: Path) -> None:
    for proxy, snap in [
        (sidecar(), snapshot(REVIEWS_SERVICE)),
        (gateway((80, 8080), (443, 8443)), mesh(tmp_path, TWO_SERVERS)),
    ]:
        config = Translator(snap).config_for(proxy)
        assert all(not logs_of(h) for lis in listeners(config).values() for h in hcms(lis))


@pytest.mark.parametrize(
    "proxy",
    [with_log(sidecar("frontend-0")), with_log(gateway((80, 8080)))],
    ids=["sidecar", "gateway"],
)
def test_envoy_accepts_the_access_log(tmp_path: Path, proxy: Proxy) -> None:
    proxy = dataclasses.replace(proxy, access_log=str(tmp_path / "access.log"))
    config = Translator(shop_snapshot()).config_for(proxy)
    assert any(h.access_log for lis in listeners(config).values() for h in hcms(lis))
    assert_envoy_accepts(tmp_path, config)
