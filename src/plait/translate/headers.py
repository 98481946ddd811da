"""Header operations (`headers.request/response` set, add, remove) as Envoy header options.

Istio's TranslateHeadersOperations: `set` overwrites (OVERWRITE_IF_EXISTS_OR_ADD), `add`
appends (APPEND_IF_EXISTS_OR_ADD), each sorted by name; pseudo-headers (`:x`) and `host`
cannot be changed this way in Envoy, so they are dropped, except that setting `host` or
`:authority` on the request rewrites the authority (a `set` wins over an `add`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from envoy.config.core.v3 import base_pb2
from envoy.config.route.v3 import route_components_pb2 as rc

from plait.api.virtualservice import HeaderOperations, Headers

HVO = base_pb2.HeaderValueOption


def _internal(name: str) -> bool:
    return name.startswith(":") or name.lower() == "host"


def _authority(headers: Mapping[str, str]) -> str:
    return next((v for k, v in headers.items() if k.lower() in (":authority", "host")), "")


def _options(headers: Mapping[str, str], action: int) -> list[base_pb2.HeaderValueOption]:
    return [
        HVO(header=base_pb2.HeaderValue(key=k, value=v), append_action=action)
        for k, v in sorted(headers.items())
        if not _internal(k)
    ]


@dataclass
class HeaderOps:
    """What one `headers` block asks of Envoy."""

    request_add: list[base_pb2.HeaderValueOption] = field(default_factory=list)
    request_remove: list[str] = field(default_factory=list)
    response_add: list[base_pb2.HeaderValueOption] = field(default_factory=list)
    response_remove: list[str] = field(default_factory=list)
    authority: str = ""

    def apply_to(self, target: rc.Route | rc.WeightedCluster.ClusterWeight) -> None:
        """Append to a Route's or ClusterWeight's `*_headers_to_add/remove` fields."""
        target.request_headers_to_add.extend(self.request_add)
        target.request_headers_to_remove.extend(self.request_remove)
        target.response_headers_to_add.extend(self.response_add)
        target.response_headers_to_remove.extend(self.response_remove)


def _ops(side: HeaderOperations | None) -> tuple[list[base_pb2.HeaderValueOption], list[str]]:
    if side is None:
        return [], []
    add = _options(side.set, HVO.OVERWRITE_IF_EXISTS_OR_ADD)
    add += _options(side.add, HVO.APPEND_IF_EXISTS_OR_ADD)
    return add, [k for k in side.remove if not _internal(k)]


def header_ops(headers: Headers | None) -> HeaderOps:
    if headers is None:
        return HeaderOps()
    req_add, req_remove = _ops(headers.request)
    resp_add, resp_remove = _ops(headers.response)
    authority = ""
    if headers.request is not None:
        authority = _authority(headers.request.set) or _authority(headers.request.add)
    return HeaderOps(req_add, req_remove, resp_add, resp_remove, authority)
