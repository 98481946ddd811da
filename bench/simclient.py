"""Simulated proxies: ADS clients that subscribe and ACK the way Envoy does.

Run as a process (`python -m bench.simclient PORT PROXIES.json`), one ADS stream per
proxy, each on its own gRPC channel (so its own TCP connection, as each Envoy has).
What one simulated proxy does, following Envoy's SotW ADS behaviour
(https://www.envoyproxy.io/docs/envoy/latest/api-docs/xds_protocol):

1. opens the stream with a wildcard CDS request carrying its node (id + plait metadata);
2. on a CDS response: decodes the clusters, subscribes EDS to the EDS clusters' service
   names (a new EDS request when the set changed), then ACKs CDS;
3. once CDS and the first EDS response are in (Envoy's cluster-manager init), sends the
   wildcard LDS request;
4. on an LDS response: decodes the listeners, subscribes RDS to the route names their HTTP
   connection managers reference, then ACKs LDS;
5. ACKs every EDS and RDS response.

It decodes every resource it is sent (clusters, endpoints, listeners and routes) so that
its CPU cost per response is in the same league as a real client's parse, but it
applies nothing. Identical bytes are decoded once per process (`_decode`: the shared
resources reach every proxy as the same bytes), and a request's `resource_names` are
encoded once per distinct list (`names_wire`: an EDS ACK repeats every cluster's name,
~48 KB at 1,000 services, which Envoy builds in C++ but Python would spend ~18 µs
re-encoding per ACK; the bytes sent are those of `SerializeToString`), so the clients'
CPU stays small next to the control plane's on a small machine. It never NACKs. It exits on SIGTERM or when its
parent dies; with `--reconnect` a stream that ends is re-opened after a jittered backoff
(0-0.5 s, doubling to 2 s), from an empty state as Envoy's is after a control-plane restart.
A proxy whose entry in PROXIES.json has `tls` speaks mutual TLS with that certificate.
With `--delta` the proxies speak delta ADS instead (`bench.simdelta`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import signal
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import grpc
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import base_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf import json_format, struct_pb2

from plait.model.proxy import Proxy, from_node_metadata, to_node_metadata
from plait.translate.typeurls import CLUSTER, ENDPOINT, LISTENER, ROUTE

METHOD = "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"
CHANNEL_OPTIONS = [
    ("grpc.use_local_subchannel_pool", 1),  # one TCP connection per simulated proxy
    ("grpc.max_receive_message_length", -1),
]
_MESSAGES: dict[str, type[Any]] = {
    CLUSTER: cluster_pb2.Cluster,
    ENDPOINT: endpoint_pb2.ClusterLoadAssignment,
    LISTENER: listener_pb2.Listener,
    ROUTE: route_pb2.RouteConfiguration,
}


_DECODED: dict[tuple[str, bytes], Any] = {}
_NAMES_WIRE: dict[tuple[str, ...], bytes] = {}


def _decode(type_url: str, body: bytes) -> Any:
    """The message of `body`, decoded once per distinct bytes (a bounded memo)."""
    key = (type_url, body)
    found = _DECODED.get(key)
    if found is None:
        if len(_DECODED) > 200_000:
            _DECODED.clear()
        found = _DECODED[key] = _MESSAGES[type_url].FromString(body)
    return found


def names_wire(names: tuple[str, ...]) -> bytes:
    """`resource_names` (field 3) as a DiscoveryRequest encodes them, once per distinct list.

    Fields are encoded in field-number order, so version and node (1, 2), these bytes,
    then type URL and nonce (4, 5) are byte for byte what `SerializeToString` writes.
    """
    found = _NAMES_WIRE.get(names)
    if found is None:
        found = discovery_pb2.DiscoveryRequest(resource_names=names).SerializeToString()
        _NAMES_WIRE[names] = found
    return found


def proxies_to_json(proxies: Iterable[Proxy], tls: Mapping[str, Any] | None = None) -> str:
    """The proxies' file: id and node metadata each, and with `tls` (node id → the
    `chain`, `key` and `roots` PEM files' paths, `bench.meshid.CertFiles`) the files of
    the client certificate it presents to the ADS port."""
    out = []
    for p in proxies:
        entry: dict[str, Any] = {"id": p.id, "metadata": to_node_metadata(p)}
        if tls is not None:
            files = tls[p.id]
            entry["tls"] = {
                "chain": str(files.chain),
                "key": str(files.key),
                "roots": str(files.roots),
            }
        out.append(entry)
    return json.dumps(out)


def proxies_from_json(text: str) -> list[Proxy]:
    return [from_node_metadata(d["id"], d["metadata"]) for d in json.loads(text)]


def credentials_from_json(text: str) -> dict[str, grpc.ChannelCredentials]:
    """Each proxy's mTLS channel credentials (by node id) when its entry has `tls`."""
    out = {}
    for d in json.loads(text):
        if "tls" in d:
            read = {k: Path(v).read_bytes() for k, v in d["tls"].items()}
            out[d["id"]] = grpc.ssl_channel_credentials(read["roots"], read["key"], read["chain"])
    return out


def open_channel(target: str, credentials: grpc.ChannelCredentials | None) -> grpc.aio.Channel:
    """One proxy's channel: its own TCP connection, mTLS when it has credentials (the
    control plane's serving certificate names `localhost`)."""
    if credentials is None:
        return grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS)
    options = [*CHANNEL_OPTIONS, ("grpc.ssl_target_name_override", "localhost")]
    return grpc.aio.secure_channel(target, credentials, options=options)


def node_of(proxy: Proxy) -> base_pb2.Node:
    meta = struct_pb2.Struct()
    json_format.ParseDict(to_node_metadata(proxy), meta)
    return base_pb2.Node(id=proxy.id, cluster=proxy.workload, metadata=meta)


def eds_names(clusters: Iterable[Any]) -> tuple[str, ...]:
    names = []
    for c in clusters:
        if c.type == cluster_pb2.Cluster.EDS:
            names.append(c.eds_cluster_config.service_name or c.name)
    return tuple(sorted(names))


def rds_names(listeners: Iterable[Any]) -> tuple[str, ...]:
    names = set()
    for lis in listeners:
        for chain in lis.filter_chains:
            for f in chain.filters:
                if f.typed_config.Is(hcm_pb2.HttpConnectionManager.DESCRIPTOR):
                    hcm = hcm_pb2.HttpConnectionManager()
                    f.typed_config.Unpack(hcm)
                    if hcm.HasField("rds"):
                        names.add(hcm.rds.route_config_name)
    return tuple(sorted(names))


class SimProxy:
    """One simulated Envoy on one ADS stream."""

    def __init__(
        self, proxy: Proxy, target: str, credentials: grpc.ChannelCredentials | None = None
    ) -> None:
        self.proxy = proxy
        self.target = target
        self.credentials = credentials
        self.reset()

    def reset(self) -> None:
        """Forget everything, as a reconnecting Envoy's new stream starts afresh."""
        self.responses = 0
        self._names: dict[str, tuple[str, ...]] = {ENDPOINT: (), ROUTE: ()}
        self._nonce: dict[str, str] = {}
        self._version: dict[str, str] = {}  # last ACKed version per type
        self._lds_requested = False
        self._node_sent = False

    def _request(self, type_url: str, nonce: str = "") -> bytes:
        """The DiscoveryRequest's bytes: its names come encoded already (`names_wire`)."""
        head = discovery_pb2.DiscoveryRequest(version_info=self._version.get(type_url, ""))
        if not self._node_sent:
            head.node.CopyFrom(node_of(self.proxy))
            self._node_sent = True
        tail = discovery_pb2.DiscoveryRequest(type_url=type_url, response_nonce=nonce)
        names = self._names.get(type_url, ())
        wire: bytes = (
            head.SerializeToString()
            + (names_wire(names) if names else b"")
            + tail.SerializeToString()
        )
        return wire

    async def run(self) -> None:
        async with open_channel(self.target, self.credentials) as channel:
            call = channel.stream_stream(
                METHOD,
                request_serializer=None,  # `_request` gives bytes
                response_deserializer=discovery_pb2.DiscoveryResponse.FromString,
            )()
            await call.write(self._request(CLUSTER))
            async for resp in call:
                self.responses += 1
                for req in self._on_response(resp):
                    await call.write(req)

    def _on_response(self, resp: Any) -> list[bytes]:
        t = resp.type_url
        decoded = [_decode(t, a.value) for a in resp.resources]
        out: list[bytes] = []
        follow = {CLUSTER: (ENDPOINT, eds_names), LISTENER: (ROUTE, rds_names)}.get(t)
        if follow is not None:
            sub_type, names_of = follow
            names = names_of(decoded)
            if names != self._names[sub_type]:
                self._names[sub_type] = names
                out.append(self._request(sub_type, self._nonce.get(sub_type, "")))
        self._nonce[t] = resp.nonce
        self._version[t] = resp.version_info
        out.append(self._request(t, resp.nonce))  # the ACK
        clusters_warm = CLUSTER in self._nonce and (
            ENDPOINT in self._nonce or not self._names[ENDPOINT]
        )
        if clusters_warm and not self._lds_requested:
            self._lds_requested = True
            out.append(self._request(LISTENER))
        return out


async def _run_forever(sim: Any) -> None:
    """Re-open the stream whenever it ends (a control-plane restart)."""
    failures = 0
    while True:
        with contextlib.suppress(grpc.aio.AioRpcError):
            await sim.run()
        failures = 1 if sim.responses else min(failures + 1, 3)
        await asyncio.sleep(random.uniform(0, 0.5 * 2 ** (failures - 1)))
        sim.reset()


async def run_all(
    port: int,
    proxies: list[Proxy],
    reconnect: bool = False,
    delta: bool = False,
    credentials: Mapping[str, grpc.ChannelCredentials] | None = None,
) -> None:
    from bench.simdelta import DeltaSimProxy  # (it builds on this module)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    kind = DeltaSimProxy if delta else SimProxy
    creds = credentials or {}
    sims = [kind(p, f"127.0.0.1:{port}", creds.get(p.id)) for p in proxies]
    try:
        async with asyncio.TaskGroup() as tg:
            streams = [tg.create_task(_run_forever(s) if reconnect else s.run()) for s in sims]
            waiter = tg.create_task(stop.wait())
            await asyncio.wait([waiter, *streams], return_when=asyncio.FIRST_COMPLETED)
            for task in [waiter, *streams]:  # stopped, or a stream ended: end them all
                task.cancel()
    except ExceptionGroup as group:
        if not stop.is_set():
            print(f"simclient: a stream ended: {group.exceptions[0]!r}", file=sys.stderr)
            raise SystemExit(1) from None


def main() -> None:
    port, path = int(sys.argv[1]), sys.argv[2]
    with open(path) as f:
        text = f.read()
    flags = sys.argv[3:]
    asyncio.run(
        run_all(
            port,
            proxies_from_json(text),
            reconnect="--reconnect" in flags,
            delta="--delta" in flags,
            credentials=credentials_from_json(text),
        )
    )


if __name__ == "__main__":
    main()
