"""Builders for the captured-traffic listener tests, and Envoy's validate verdict on them:
RDS references become an empty inline route table (validate mode has no xDS), every
cluster a listener names is made STATIC, and the SDS cluster mTLS secrets come from is
added."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from envoy.config.bootstrap.v3 import bootstrap_pb2
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from test_translate_envoy_validate import sds_cluster

import authzkit
from plait.api.security import MtlsMode
from plait.translate import captured, names
from plait.translate.listeners import inbound_listener, outbound_listener


def explicit_hcm() -> hcm_pb2.HttpConnectionManager:
    hcm = hcm_pb2.HttpConnectionManager()
    outbound_listener("127.0.0.1", 15001).filter_chains[0].filters[0].typed_config.Unpack(hcm)
    return hcm


def explicit_inbound(mode: MtlsMode) -> listener_pb2.Listener:
    return inbound_listener("127.0.0.1", 15006, "inbound|8080||", mode)


def hcms(chain_owner: listener_pb2.Listener) -> list[hcm_pb2.HttpConnectionManager]:
    out = []
    for chain in chain_owner.filter_chains:
        for f in chain.filters:
            hcm = hcm_pb2.HttpConnectionManager()
            if f.typed_config.Unpack(hcm):
                out.append(hcm)
    return out


def tcp_cluster(chain_filters: Sequence[object]) -> str:
    proxy = tcp_proxy_pb2.TcpProxy()
    assert chain_filters[0].typed_config.Unpack(proxy)  # type: ignore[attr-defined]
    return proxy.cluster


def tcp_clusters(chain_filters: Sequence[object]) -> list[str]:
    """Every cluster a tcp_proxy names: its one cluster or its weighted ones."""
    proxy = tcp_proxy_pb2.TcpProxy()
    assert chain_filters[0].typed_config.Unpack(proxy)  # type: ignore[attr-defined]
    return [proxy.cluster] if proxy.cluster else [c.name for c in proxy.weighted_clusters.clusters]


def _static(name: str) -> cluster_pb2.Cluster:
    cluster = cluster_pb2.Cluster(name=name, type=cluster_pb2.Cluster.STATIC)
    cluster.connect_timeout.seconds = 1
    return cluster


def assert_envoy_accepts(tmp_path: Path, listeners: Sequence[listener_pb2.Listener]) -> None:
    out = bootstrap_pb2.Bootstrap()
    out.node.id = "sidecar~validate.default"
    out.node.cluster = "validate"
    out.static_resources.clusters.extend(
        [
            sds_cluster(),
            captured.passthrough_cluster(),
            captured.inbound_passthrough_cluster(),
            captured.blackhole_cluster(),
        ]
    )
    known = {c.name for c in out.static_resources.clusters}
    for original in listeners:
        listener = listener_pb2.Listener()
        listener.CopyFrom(original)
        chains = [*listener.filter_chains]
        if listener.HasField("default_filter_chain"):
            chains.append(listener.default_filter_chain)
        for chain in chains:
            for f in chain.filters:
                hcm = hcm_pb2.HttpConnectionManager()
                if f.typed_config.Unpack(hcm):
                    hcm.route_config.name = hcm.rds.route_config_name
                    hcm.ClearField("rds")
                    f.typed_config.Pack(hcm)
                    continue
                for cluster in tcp_clusters([f]):
                    if cluster not in known:
                        out.static_resources.clusters.append(_static(cluster))
                        known.add(cluster)
        out.static_resources.listeners.append(listener)
    result = authzkit.envoy_validate(authzkit.write_bootstrap(tmp_path / "boot.json", out))
    assert result.returncode == 0, f"Envoy rejected the config:\n{result.stdout}{result.stderr}"


__all__ = ["MtlsMode", "names"]
