"""Serialized resources: each Envoy resource is packed into an Any and serialized once.

Translation memoizes resources that many proxies share (clusters, endpoints, the outbound
route table), so the same `Resource` object, and the same bytes, reach every stream that
sends it; the xDS server frames those bytes into a DiscoveryResponse without re-encoding.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import any_pb2
from google.protobuf.message import Message

from plait.translate.consistency import Ref, references
from plait.translate.typeurls import PUSH_ORDER


@dataclass(frozen=True, slots=True)
class Resource:
    """One named Envoy resource as the serialized bytes of a google.protobuf.Any, and the
    resources it names by xDS (`refs`, for the consistency check)."""

    type_url: str
    name: str
    body: bytes
    digest: str
    refs: tuple[Ref, ...] = ()

    @classmethod
    def pack(cls, name: str, message: Message) -> Resource:
        wrapped = any_pb2.Any()
        wrapped.Pack(message)
        body = wrapped.SerializeToString(deterministic=True)
        digest = hashlib.blake2b(body, digest_size=8).hexdigest()
        return cls(wrapped.type_url, name, body, digest, references(message))


class Overlay(Mapping[str, Resource]):
    """`extra` over `base` (which it wins against on a name clash), without copying
    `base`: a proxy's few own resources over the snapshot's shared ones."""

    __slots__ = ("_base", "_extra", "_len")

    def __init__(self, base: Mapping[str, Resource], extra: Mapping[str, Resource]) -> None:
        self._base = base
        self._extra = extra
        self._len = len(base) + sum(1 for name in extra if name not in base)

    def __getitem__(self, name: str) -> Resource:
        found = self._extra.get(name)
        return found if found is not None else self._base[name]

    def get(self, name: str, default: Any = None) -> Any:
        found = self._extra.get(name)
        return found if found is not None else self._base.get(name, default)

    def __contains__(self, name: object) -> bool:
        return name in self._extra or name in self._base

    def __iter__(self) -> Iterator[str]:
        yield from self._extra
        yield from (name for name in self._base if name not in self._extra)

    def __len__(self) -> int:
        return self._len


def _version(resources: Mapping[str, Resource]) -> str:
    h = hashlib.blake2b(digest_size=8)
    for name in sorted(resources):
        h.update(name.encode())
        h.update(resources[name].digest.encode())
    return h.hexdigest()


@dataclass(frozen=True)
class ProxyConfig:
    """Everything one proxy should have, by type URL then resource name.

    `versions` (one per type, a hash of names and digests) are computed once here; a
    config layered on a shared base (`layered`) reuses the base's dicts and versions for
    the types it does not add to, so per-proxy cost does not grow with the mesh.
    """

    by_type: Mapping[str, Mapping[str, Resource]]
    versions: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.versions:
            object.__setattr__(
                self, "versions", {t: _version(self.by_type.get(t, {})) for t in PUSH_ORDER}
            )

    @classmethod
    def of(cls, resources: Iterable[Resource]) -> ProxyConfig:
        by_type: dict[str, dict[str, Resource]] = {t: {} for t in PUSH_ORDER}
        for r in resources:
            by_type.setdefault(r.type_url, {})[r.name] = r
        return cls(by_type)

    @classmethod
    def layered(cls, base: ProxyConfig, extra: Iterable[Resource]) -> ProxyConfig:
        """`base` plus per-proxy resources (which win on a name clash)."""
        extras: dict[str, dict[str, Resource]] = {}
        for r in extra:
            extras.setdefault(r.type_url, {})[r.name] = r
        by_type = dict(base.by_type)
        versions = dict(base.versions)
        for type_url, added in extras.items():
            by_type[type_url] = Overlay(base.resources(type_url), added)
            h = hashlib.blake2b(digest_size=8)
            h.update(base.version(type_url).encode())
            h.update(_version(added).encode())
            versions[type_url] = h.hexdigest()
        return cls(by_type, versions)

    def replacing(
        self, type_url: str, resources: Mapping[str, Resource], version: str | None = None
    ) -> ProxyConfig:
        """This config with the resources of `type_url` replaced (`version`: theirs, when
        the caller knows it); the other types' mappings and versions are shared."""
        by_type = {**self.by_type, type_url: resources}
        versions = {**self.versions, type_url: version or _version(resources)}
        return ProxyConfig(by_type, versions)

    def resources(self, type_url: str) -> Mapping[str, Resource]:
        return self.by_type.get(type_url, {})

    def version(self, type_url: str) -> str:
        return self.versions.get(type_url) or _version(self.resources(type_url))
