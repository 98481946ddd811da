"""The equally-instrumented hand-written Envoy: what `bench.dataplane` (and
`bench.pathcost`, `bench.observecost`) compare plait's sidecars with.

A hand-written Envoy observed as plait observes a sidecar (`instrument`): plait's own
access log, stats logger with the same tags, gRPC filter, claim stamps, tracer and
bootstrap stats settings, and — on the client side — the callee's labels and Service as
endpoint and cluster metadata, where the stats logger reads them as on plait's sidecars
(without them 11 of its 25 labels would be empty: cheaper, and not the same metrics).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

from bench import handwritten
from bench.meshgen import NAMESPACE
from bench.procs import HOST
from plait.model.labels import Labels
from plait.model.meshsettings import MeshSettings, with_local_collector
from plait.model.proxy import Proxy, ProxyKind, node_id
from plait.model.registry import Endpoint, Service
from plait.translate import accesslog, metrics, peer, tracing

SERVICE = "bench-server"  # the Service the hand-written servers stand for


def as_json(message: Message) -> dict[str, Any]:
    return dict(MessageToDict(message, preserving_proto_field_name=True))


def hand_proxy(name: str) -> Proxy:
    return Proxy(
        id=node_id(ProxyKind.SIDECAR, f"{name}-0", NAMESPACE),
        kind=ProxyKind.SIDECAR,
        workload=name,
        namespace=NAMESPACE,
        service_account=name,
        labels=Labels.of({"app": name, "version": "v1"}),
    )


SERVED = Service(f"{SERVICE}.{NAMESPACE}.svc.cluster.local", SERVICE, NAMESPACE, ())
"""The Service the hand-written servers stand for (the client's requests name it)."""


def callee_metadata(callee: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The filter metadata plait's EDS and CDS give a callee's endpoint and cluster
    (`metrics.tag_endpoint`, `metrics.tag_cluster`), for the hand-written forwarder's."""
    lb, cluster = endpoint_components_pb2.LbEndpoint(), cluster_pb2.Cluster()
    labels = hand_proxy(callee).labels
    metrics.tag_endpoint(lb, Endpoint(HOST, 0, labels, workload=callee, namespace=NAMESPACE))
    metrics.tag_cluster(cluster, SERVED)
    return as_json(lb.metadata)["filter_metadata"], as_json(cluster.metadata)["filter_metadata"]


def instrument(
    run_dir: Path,
    collector_port: int,
    name: str,
    *,
    inbound: bool,
    mtls: bool,
    callee: str = "obs-server",
) -> handwritten.Instrument:
    """A hand-written Envoy observed as plait observes a sidecar: plait's own access log,
    stats logger (with the tags of the same report), gRPC filter, claim stamp (outbound),
    tracer with the same sampling and collector, stats and span-batching settings; the
    Service it serves (inbound) or, outbound, the labels of `callee` and its Service as
    metadata of the forwarder's cluster, where the stats logger reads them as on plait's."""
    proxy = hand_proxy(name)
    settings = with_local_collector(MeshSettings(), HOST, collector_port).tracing
    direction = accesslog.Direction.INBOUND if inbound else accesslog.Direction.OUTBOUND
    log = accesslog.access_log(str(run_dir / f"{name}.access.log"), direction, proxy.id)
    tags = metrics.destination_tags(proxy, SERVED, mtls) if inbound else metrics.source_tags(proxy)
    endpoint_metadata, target_metadata = ({}, {}) if inbound else callee_metadata(callee)
    stamps = hcm_pb2.HttpConnectionManager()
    if not inbound:
        peer.stamp(stamps, peer.source_workload(proxy))
        peer.stamp(stamps, metrics.peer_claim(proxy), metrics.PEER_HEADER)
    traced = tracing.tracing_for(settings, proxy)
    collector = tracing.collector_cluster(settings)
    assert traced is not None and collector is not None
    return handwritten.Instrument(
        access_logs=[as_json(log), as_json(metrics.stats_logger(tags))],
        filters=[as_json(metrics.protocol_filter())],
        header_mutations=[as_json(e) for e in stamps.early_header_mutation_extensions],
        tracing=as_json(traced),
        clusters=[as_json(collector)],
        target_metadata=target_metadata,
        endpoint_metadata=endpoint_metadata,
        bootstrap={
            "stats_flush_interval": "1s",
            "stats_config": metrics.stats_config(),
            "layered_runtime": {
                "layers": [{"name": "static", "static_layer": dict(tracing.ZIPKIN_RUNTIME)}]
            },
        },
    )


def renamed(node: Any, names: dict[str, str]) -> Any:
    """`node` with every string that is a key of `names` replaced by its value."""
    if isinstance(node, list):
        return [renamed(item, names) for item in node]
    if isinstance(node, dict):
        return {k: renamed(v, names) for k, v in node.items()}
    return names.get(node, node) if isinstance(node, str) else node


def istio_names(config: dict[str, Any], side: str, host: str) -> None:
    """A `handwritten.forwarder` config given plait's (Istio's) names for what each request
    names, where the access log (`upstream_cluster`, `route_name`) and the spans
    (`upstream_cluster`) carry them: the client's cluster `outbound|8080||HOST` (`side`
    "client"), a server's `inbound|PORT||` ("server"), the routes' `default`, the HCM's
    stat prefix. With the forwarder's own short names (`target`) the same access log and
    spans would carry shorter strings: cheaper, and not the same telemetry."""
    resources = config["static_resources"]
    listener = resources["listeners"][0]
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    target = resources["clusters"][0]
    endpoint = target["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
    port = endpoint["address"]["socket_address"]["port_value"]
    own = listener["address"]["socket_address"]["port_value"]
    istio = f"inbound|{port}||" if side == "server" else f"outbound|8080||{host}"
    hcm["stat_prefix"] = f"inbound_{own}" if side == "server" else "outbound_http_proxy"
    for virtual_host in hcm["route_config"]["virtual_hosts"]:
        for route in virtual_host["routes"]:
            route["name"] = "default"
    config["static_resources"] = renamed(resources, {target["name"]: istio})
