"""A simulated proxy on delta (incremental) ADS, as `bench.simclient`'s `SimProxy` is on
the State of the World (`python -m bench.simclient PORT PROXIES.json --delta`).

What it does, following Envoy's delta ADS behaviour
(https://www.envoyproxy.io/docs/envoy/latest/api-docs/xds_protocol, "Incremental xDS"):

1. opens DeltaAggregatedResources with a wildcard CDS request carrying its node;
2. keeps the clusters and listeners it holds by name (upserts and `removed_resources`);
   on a CDS response, subscribes EDS to the EDS clusters' service names it did not
   subscribe to yet and unsubscribes the ones gone (only the difference, as Envoy does),
   then ACKs by nonce; LDS drives RDS the same way;
3. asks for LDS once clusters are warm (CDS, and the first EDS response if any);
4. ACKs every response.

After a stream ends (`reset`), it keeps what it holds, as Envoy does, and the new stream
tells the server (`initial_resource_versions`, every name it is subscribed to), so a
control-plane restart costs only what changed. It decodes what it is sent, as
`SimProxy` does; it never NACKs.
"""

from __future__ import annotations

from typing import Any

import grpc
from envoy.service.discovery.v3 import discovery_pb2

from bench.simclient import _decode, eds_names, node_of, open_channel, rds_names
from plait.model.proxy import Proxy
from plait.translate.typeurls import CLUSTER, ENDPOINT, LISTENER, ROUTE

METHOD = "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources"
_FOLLOW = {CLUSTER: (ENDPOINT, eds_names), LISTENER: (ROUTE, rds_names)}


class DeltaSimProxy:
    """One simulated Envoy on one delta ADS stream."""

    def __init__(
        self, proxy: Proxy, target: str, credentials: grpc.ChannelCredentials | None = None
    ) -> None:
        self.proxy = proxy
        self.target = target
        self.credentials = credentials
        self.held: dict[str, dict[str, tuple[str, Any]]] = {
            t: {} for t in (CLUSTER, ENDPOINT, LISTENER, ROUTE)
        }  # type -> name -> (version, decoded message)
        self.subscribed: dict[str, set[str]] = {ENDPOINT: set(), ROUTE: set()}
        self.reset()

    def reset(self) -> None:
        """A new stream: what is held stays (it is announced), the stream state goes."""
        self.responses = 0
        self._node_sent = False
        self._announced: set[str] = set()
        self._lds_requested = False
        self._eds_seen = False

    def _request(self, type_url: str, **fields: Any) -> Any:
        req = discovery_pb2.DeltaDiscoveryRequest(type_url=type_url, **fields)
        if type_url not in self._announced:  # the stream's first request of the type
            self._announced.add(type_url)
            req.initial_resource_versions.update(
                {name: version for name, (version, _) in self.held[type_url].items()}
            )
            if type_url in self.subscribed:
                names = set(req.resource_names_subscribe) | self.subscribed[type_url]
                del req.resource_names_subscribe[:]
                req.resource_names_subscribe.extend(sorted(names))
        if not self._node_sent:
            req.node.CopyFrom(node_of(self.proxy))
            self._node_sent = True
        return req

    async def run(self) -> None:
        async with open_channel(self.target, self.credentials) as channel:
            call = channel.stream_stream(
                METHOD,
                request_serializer=discovery_pb2.DeltaDiscoveryRequest.SerializeToString,
                response_deserializer=discovery_pb2.DeltaDiscoveryResponse.FromString,
            )()
            await call.write(self._request(CLUSTER))
            if self.held[CLUSTER]:  # a reconnect: clusters are warm, ask for the rest now
                for req in self._listeners():
                    await call.write(req)
            async for resp in call:
                self.responses += 1
                for req in self._on_response(resp):
                    await call.write(req)

    def _on_response(self, resp: Any) -> list[Any]:
        t = resp.type_url
        held = self.held[t]
        for r in resp.resources:
            held[r.name] = (r.version, _decode(t, r.resource.value))
        for name in resp.removed_resources:
            held.pop(name, None)
        out: list[Any] = []
        follow = _FOLLOW.get(t)
        if follow is not None:
            sub_type, names_of = follow
            names = set(names_of(m for _, m in held.values()))
            before = self.subscribed[sub_type]
            if names != before:
                self.subscribed[sub_type] = names
                for name in before - names:
                    self.held[sub_type].pop(name, None)
                if sub_type in self._announced:
                    out.append(
                        self._request(
                            sub_type,
                            resource_names_subscribe=sorted(names - before),
                            resource_names_unsubscribe=sorted(before - names),
                        )
                    )
                else:
                    out.append(self._request(sub_type))
        self._eds_seen = self._eds_seen or t == ENDPOINT
        out.append(discovery_pb2.DeltaDiscoveryRequest(type_url=t, response_nonce=resp.nonce))
        if t in (CLUSTER, ENDPOINT) and (self._eds_seen or not self.subscribed[ENDPOINT]):
            out += self._listeners()
        return out

    def _listeners(self) -> list[Any]:
        if self._lds_requested:
            return []
        self._lds_requested = True
        out = [self._request(LISTENER)]
        if self.subscribed[ROUTE]:  # a reconnect: announce the routes held too
            out.append(self._request(ROUTE))
        if self.subscribed[ENDPOINT] and ENDPOINT not in self._announced:
            out.append(self._request(ENDPOINT))
        return out
