"""A test SDS client (one StreamSecrets stream over the agent's Unix socket) and the
secrets a response holds. Importable from every test directory."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2
from envoy.service.discovery.v3 import discovery_pb2
from google.rpc import status_pb2

from plait.agent.sds import SDS_METHOD, SDS_SERVICE, SECRET_TYPE_URL


class SdsStream:
    """Write DiscoveryRequests, read DiscoveryResponses (each read has a deadline)."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        method = channel.stream_stream(
            f"/{SDS_SERVICE}/{SDS_METHOD}",
            request_serializer=discovery_pb2.DiscoveryRequest.SerializeToString,
            response_deserializer=discovery_pb2.DiscoveryResponse.FromString,
        )
        self.call: Any = method()
        self.last: discovery_pb2.DiscoveryResponse | None = None

    async def request(
        self, names: list[str], nonce: str = "", version: str = "", error: str | None = None
    ) -> None:
        req = discovery_pb2.DiscoveryRequest(
            type_url=SECRET_TYPE_URL,
            resource_names=names,
            response_nonce=nonce,
            version_info=version,
        )
        req.node.id = "sidecar~test.default"
        if error is not None:
            req.error_detail.CopyFrom(status_pb2.Status(code=3, message=error))
        await self.call.write(req)

    async def read(self, timeout: float = 3.0) -> discovery_pb2.DiscoveryResponse:
        async with asyncio.timeout(timeout):
            response: discovery_pb2.DiscoveryResponse = await self.call.read()
        assert response is not grpc.aio.EOF
        self.last = response
        return response

    async def ack(self, names: list[str]) -> None:
        assert self.last is not None
        await self.request(names, self.last.nonce, self.last.version_info)


def secrets(response: discovery_pb2.DiscoveryResponse) -> dict[str, secret_pb2.Secret]:
    out = {}
    for packed in response.resources:
        secret = secret_pb2.Secret()
        assert packed.Unpack(secret)
        out[secret.name] = secret
    return out
