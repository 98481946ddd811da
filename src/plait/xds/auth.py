"""Who is on the other end of an ADS stream, and may it have the node's configuration.

With `ServerTls` the ADS port speaks mutual TLS: gRPC verifies the client's certificate
chain against the trust bundle during the handshake (a client without a certificate, or
with one from another CA, never reaches a handler). What TLS does not check is *which*
workload the certificate names, so before a stream is served (before any response):

1. `peer_identity` reads the verified leaf from the stream's auth context
   (`x509_pem_cert`, see grpc's `ServicerContext.auth_context`) and takes its one URI SAN
   as a `SpiffeId`;
2. `authorize` refuses the node unless that identity is in the server's trust domain and
   the node metadata claims the same NAMESPACE and SERVICE_ACCOUNT, then asks the
   platform's `ProxyAdmission` whether that identity may be the workload the node
   claims (WORKLOAD_NAME, labels, ...).

Both raise `PermissionDeniedError`, which the server turns into PERMISSION_DENIED.

Rotation: `server_credentials` uses `grpc.dynamic_ssl_server_credentials`, whose fetcher
gRPC calls before *every* TLS handshake. It calls `ServerTls.credentials()` and hands
gRPC a new certificate configuration only when `version` changed, so a new serving
certificate or trust bundle applies to the next connection while established
connections (and their streams) keep the one they were made with; no restart. The
fetcher runs on a gRPC core thread, not on the event loop: `credentials` must be cheap,
thread-safe and non-blocking (return an immutable value the control plane swaps in).
Material that does not parse is logged and skipped (the server keeps the previous one).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import grpc
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from plait.model.identity import SpiffeId, SpiffeIdError
from plait.model.proxy import Proxy
from plait.xds.session import PermissionDeniedError

log = logging.getLogger(__name__)


class ProxyAdmission(Protocol):
    """Who may connect to xDS as which workload: the platform's half of admission.

    `authorize` has already proved the certificate is this mesh's and names the namespace
    and service account the node claims; an admission checks the rest of the claim (the
    workload's name and labels, so its inbound configuration) against what the platform
    knows. Local mode: `controlplane.security.DeploymentAdmission` (a Deployment of that
    name runs as that service account with those labels). Kubernetes mode plugs in here
    too: the agent's certificate was issued for its projected service-account token, and
    its admission looks the node's pod up (in its namespace, running as that service
    account, with those labels). Called on the event loop per new stream: no blocking.
    """

    def admit(self, identity: SpiffeId, proxy: Proxy) -> str | None:
        """None admits the node; a reason refuses its stream (PERMISSION_DENIED)."""
        ...


class ServingCredentials(Protocol):
    """What the ADS port presents and trusts now; `version` changes when any part does
    (the CA's `plait.ca.ServingCredentials` is one)."""

    @property
    def key_pem(self) -> bytes: ...  # PEM private key
    @property
    def chain_pem(self) -> bytes: ...  # PEM, leaf first
    @property
    def trust_bundle_pem(self) -> bytes: ...  # roots clients may chain to (several in a rotation)
    @property
    def version(self) -> int: ...


@dataclass(frozen=True)
class ServerTls:
    """Mutual TLS and proxy authorization for the ADS port (see the module docstring)."""

    credentials: Callable[[], ServingCredentials]
    trust_domain: str = "cluster.local"
    admission: ProxyAdmission | None = None


def peer_identity(auth_context: Mapping[str, Iterable[bytes]]) -> SpiffeId:
    """The SPIFFE ID of the TLS peer's verified certificate; raises PermissionDeniedError."""
    if b"ssl" not in list(auth_context.get("transport_security_type", ())):
        raise PermissionDeniedError("the ADS port requires mutual TLS")
    pems = list(auth_context.get("x509_pem_cert", ()))
    if not pems:
        raise PermissionDeniedError("no client certificate")
    try:
        cert = x509.load_pem_x509_certificate(pems[0])
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        uris = sans.value.get_values_for_type(x509.UniformResourceIdentifier)
    except x509.ExtensionNotFound:
        uris = []
    except ValueError as exc:
        raise PermissionDeniedError(f"unreadable client certificate: {exc}") from exc
    if len(uris) != 1:
        raise PermissionDeniedError(
            f"the client certificate has {len(uris)} URI SANs; expected one SPIFFE ID",
            identity=",".join(uris),
        )
    try:
        return SpiffeId.parse(uris[0])
    except SpiffeIdError as exc:
        raise PermissionDeniedError(str(exc), identity=uris[0]) from exc


def claimed_identity(proxy: Proxy, trust_domain: str) -> str:
    """The identity a node's metadata claims, written as a SPIFFE URI."""
    return f"spiffe://{trust_domain}/ns/{proxy.namespace}/sa/{proxy.service_account}"


def authorize(
    identity: SpiffeId,
    proxy: Proxy,
    *,
    trust_domain: str,
    admission: ProxyAdmission | None = None,
) -> None:
    """Refuse (PermissionDeniedError) a node whose claims the certificate does not back."""
    reason: str | None = None
    if identity.trust_domain != trust_domain:
        reason = f"trust domain {identity.trust_domain!r} is not this mesh's {trust_domain!r}"
    elif (identity.namespace, identity.service_account) != (
        proxy.namespace,
        proxy.service_account,
    ):
        reason = (
            f"node {proxy.id!r} claims {claimed_identity(proxy, trust_domain)}"
            f" but its certificate is {identity.uri}"
        )
    elif admission is not None:
        reason = admission.admit(identity, proxy)
    if reason is not None:
        raise PermissionDeniedError(reason, identity=identity.uri)


def _configuration(creds: ServingCredentials) -> Any:
    return grpc.ssl_server_certificate_configuration(
        [(creds.key_pem, creds.chain_pem)], root_certificates=creds.trust_bundle_pem
    )


def _check_parses(creds: ServingCredentials) -> None:
    """Raise ValueError unless key, chain and bundle are PEM gRPC can load."""
    load_pem_private_key(creds.key_pem, password=None)
    if not x509.load_pem_x509_certificates(creds.chain_pem):
        raise ValueError("empty certificate chain")
    if not x509.load_pem_x509_certificates(creds.trust_bundle_pem):
        raise ValueError("empty trust bundle")


class _Fetcher:
    """gRPC's per-handshake callback: a new configuration when the version changed."""

    def __init__(self, credentials: Callable[[], ServingCredentials], version: int) -> None:
        self._credentials = credentials
        self._version = version
        self._refused: int | None = None  # a version that did not parse (logged once)
        self._lock = threading.Lock()  # gRPC core threads call it, maybe concurrently

    def __call__(self) -> Any:
        try:
            creds = self._credentials()
        except Exception:  # gRPC would only log "fetch failed"; say why, keep serving
            log.exception("cannot read the ADS serving credentials; keeping the current ones")
            return None
        with self._lock:
            if creds.version in (self._version, self._refused):
                return None
            try:
                _check_parses(creds)
            except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
                self._refused = creds.version
                log.error(
                    "ADS serving credentials version %d are unusable (%s); keeping version %d",
                    creds.version,
                    exc,
                    self._version,
                )
                return None
            self._version = creds.version
        log.info("ADS serving credentials now at version %d", creds.version)
        return _configuration(creds)


def server_credentials(tls: ServerTls) -> Any:
    """grpc.ServerCredentials requiring a client certificate, rotating without restart."""
    initial = tls.credentials()
    _check_parses(initial)
    return grpc.dynamic_ssl_server_credentials(
        _configuration(initial),
        _Fetcher(tls.credentials, initial.version),
        require_client_authentication=True,
    )
