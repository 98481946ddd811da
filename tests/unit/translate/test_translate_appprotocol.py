"""The protocol a sidecar speaks to its app: derived from the Services selecting it."""

from __future__ import annotations

from pathlib import Path

import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2 as hpo_pb2
from test_translate_envoy_validate import assert_envoy_accepts
from translate_kit import clusters, sidecar, snapshot

from plait.model.labels import Labels
from plait.model.registry import Protocol
from plait.translate import clusters as cluster_builders
from plait.translate import names
from plait.translate.appprotocol import HTTP_OPTIONS, AppProtocols
from plait.translate.proxy import Translator

SERVICES = """
apiVersion: v1
kind: Service
metadata: {name: recommend}
spec:
  selector: {app: recommend}
  ports: [{name: grpc, port: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: recommend-h2}
spec:
  selector: {app: recommend}
  ports: [{name: web, port: 8081, appProtocol: kubernetes.io/h2c}]
---
apiVersion: v1
kind: Service
metadata: {name: reviews}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: mixed}
spec:
  selector: {app: mixed}
  ports: [{name: http, port: 8080}, {name: grpc, port: 9090}, {name: tcp-db, port: 5432}]
---
apiVersion: v1
kind: Service
metadata: {name: bare}
spec:
  selector: {app: bare}
  ports: [{port: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: recommend, namespace: other}
spec:
  selector: {app: grpc-elsewhere}
  ports: [{name: grpc, port: 8080}]
"""


@pytest.mark.parametrize(
    ("namespace", "labels", "expected"),
    [
        # every selecting Service port is h2 (grpc + kubernetes.io/h2c) → HTTP2
        ("default", {"app": "recommend", "version": "v1"}, Protocol.HTTP2),
        ("default", {"app": "reviews"}, Protocol.HTTP),
        # http and grpc ports on one app port: follow the downstream (TCP ports do not count)
        ("default", {"app": "mixed"}, Protocol.UNKNOWN),
        ("default", {"app": "bare"}, Protocol.UNKNOWN),
        # no Service selects it
        ("default", {"app": "client"}, Protocol.UNKNOWN),
        # selectors only apply within their namespace
        ("default", {"app": "grpc-elsewhere"}, Protocol.UNKNOWN),
        ("other", {"app": "grpc-elsewhere"}, Protocol.GRPC),
    ],
)
def test_app_protocol_from_the_selecting_services(
    namespace: str, labels: dict[str, str], expected: Protocol
) -> None:
    protocols = AppProtocols(snapshot(SERVICES))
    assert protocols.app_protocol(namespace, Labels.of(labels)) is expected


def _http_options(cluster: cluster_pb2.Cluster) -> hpo_pb2.HttpProtocolOptions | None:
    if HTTP_OPTIONS not in cluster.typed_extension_protocol_options:
        return None
    out = hpo_pb2.HttpProtocolOptions()
    assert cluster.typed_extension_protocol_options[HTTP_OPTIONS].Unpack(out)
    return out


def test_inbound_cluster_speaks_h2c_to_a_grpc_app() -> None:
    options = _http_options(cluster_builders.inbound_cluster("127.0.0.1", 9000, Protocol.GRPC))
    assert options is not None
    assert options.explicit_http_config.HasField("http2_protocol_options")


def test_inbound_cluster_speaks_http1_to_an_http_app() -> None:
    assert _http_options(cluster_builders.inbound_cluster("127.0.0.1", 9000)) is None
    assert _http_options(cluster_builders.inbound_cluster("127.0.0.1", 9000, Protocol.HTTP)) is None


def test_inbound_cluster_follows_the_downstream_when_the_protocol_is_unknown() -> None:
    options = _http_options(cluster_builders.inbound_cluster("127.0.0.1", 9000, Protocol.UNKNOWN))
    assert options is not None
    config = options.use_downstream_protocol_config
    assert config.HasField("http_protocol_options")
    assert config.HasField("http2_protocol_options")


@pytest.mark.parametrize(
    ("instance", "version"),
    [("recommend-0", "h2"), ("reviews-0", None), ("mixed-0", "downstream")],
)
def test_translator_gives_each_sidecar_its_app_protocol(instance: str, version: str | None) -> None:
    proxy = sidecar(instance, app_port=21002)
    cluster = clusters(Translator(snapshot(SERVICES)).config_for(proxy))[
        names.inbound_cluster(21002)
    ]
    options = _http_options(cluster)
    got = (
        None
        if options is None
        else "h2"
        if options.HasField("explicit_http_config")
        else "downstream"
    )
    assert got == version


@pytest.mark.parametrize("instance", ["recommend-0", "mixed-0"])
def test_envoy_accepts_h2c_and_downstream_inbound_clusters(tmp_path: Path, instance: str) -> None:
    config = Translator(snapshot(SERVICES)).config_for(sidecar(instance))
    assert_envoy_accepts(tmp_path, config)
