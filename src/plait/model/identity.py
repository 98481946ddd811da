"""Workload identity: SPIFFE IDs, and the names the agent, Envoy and the translator share.

A workload's identity is `spiffe://TRUST_DOMAIN/ns/NAMESPACE/sa/SERVICE_ACCOUNT`, as in
Istio; AuthorizationPolicy `principals` are the same string without `spiffe://`.

The agent serves two secrets to its Envoy over SDS (names as in Istio, so that Istio
tooling recognises them): `default` (the workload certificate chain and private key) and
`ROOTCA` (the trust bundle). Envoy reaches the agent through the static cluster
`sds-grpc`, a Unix socket set in the bootstrap.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SDS_CLUSTER = "sds-grpc"
CERT_SECRET = "default"
ROOT_SECRET = "ROOTCA"

CONTROL_PLANE_NAMESPACE = "istio-system"
CONTROL_PLANE_SERVICE_ACCOUNT = "plaitd"
"""The control plane's own identity (its xDS and CA serving certificate)."""
CONTROL_PLANE_HOST = f"{CONTROL_PLANE_SERVICE_ACCOUNT}.{CONTROL_PLANE_NAMESPACE}.svc"
"""The SNI Envoys send to the xDS port; a DNS SAN of the serving certificate."""

_SEGMENT = re.compile(r"^[A-Za-z0-9._-]+$")
_SPIFFE = re.compile(r"^spiffe://(?P<td>[^/]+)/ns/(?P<ns>[^/]+)/sa/(?P<sa>[^/]+)$")


class SpiffeIdError(ValueError):
    """A string is not a workload SPIFFE ID of the form plait issues."""


@dataclass(frozen=True, order=True)
class SpiffeId:
    trust_domain: str
    namespace: str
    service_account: str

    def __post_init__(self) -> None:
        for part in (self.trust_domain, self.namespace, self.service_account):
            if not _SEGMENT.match(part):
                raise SpiffeIdError(f"{part!r} cannot be part of a SPIFFE ID")

    @property
    def uri(self) -> str:
        return f"spiffe://{self.principal}"

    @property
    def principal(self) -> str:
        """The AuthorizationPolicy form: `TRUST_DOMAIN/ns/NS/sa/SA`."""
        return f"{self.trust_domain}/ns/{self.namespace}/sa/{self.service_account}"

    def __str__(self) -> str:
        return self.uri

    @classmethod
    def parse(cls, uri: str) -> SpiffeId:
        m = _SPIFFE.match(uri)
        if m is None:
            raise SpiffeIdError(
                f"{uri!r} is not a workload identity (spiffe://TRUST_DOMAIN/ns/NS/sa/SA)"
            )
        return cls(m["td"], m["ns"], m["sa"])


def control_plane_identity(trust_domain: str) -> SpiffeId:
    return SpiffeId(trust_domain, CONTROL_PLANE_NAMESPACE, CONTROL_PLANE_SERVICE_ACCOUNT)
