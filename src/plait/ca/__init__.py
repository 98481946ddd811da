"""The mesh certificate authority (it runs inside the control plane).

    CertificateAuthority  signs workload SVIDs from checked CSRs; trust bundle; expiry
                          warnings; reloads its directory on change (authority.py)
    IssuedCertificate     a signed chain, leaf first, with its expiry and signer
    ServingCertificate    the control plane's own serving certificate, kept fresh (serving.py)
    ServingCredentials    key + chain + bundle + version, for the HTTPS and xDS servers
    TokenIssuer           mints local-mode workload tokens (Ed25519 JWTs) (tokens.py)
    TokenVerifier         checks them; TokenIdentity is what a token proves
    CaServer              the HTTPS JSON API: POST /v1/certificates, GET /v1/trust-bundle
    rotation              root rotation steps: add_next_root, switch_root, finish_rotation

Files, layouts and permissions: files.py. Errors: CaError and its subclasses in
plait.errors.
"""

from plait.ca.authority import (
    DEFAULT_WORKLOAD_TTL,
    MAX_TTL,
    MIN_TTL,
    CaDescription,
    CertificateAuthority,
    CertInfo,
    IssuedCertificate,
)
from plait.ca.server import CaServer
from plait.ca.serving import ServingCertificate, ServingCredentials
from plait.ca.store import Layout
from plait.ca.tokens import TokenIdentity, TokenIssuer, TokenVerifier

__all__ = [
    "DEFAULT_WORKLOAD_TTL",
    "MAX_TTL",
    "MIN_TTL",
    "CaDescription",
    "CaServer",
    "CertInfo",
    "CertificateAuthority",
    "IssuedCertificate",
    "Layout",
    "ServingCertificate",
    "ServingCredentials",
    "TokenIdentity",
    "TokenIssuer",
    "TokenVerifier",
]
