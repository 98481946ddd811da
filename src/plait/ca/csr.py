"""Checking a workload's certificate signing request before anything is signed.

Only the public key is taken from a CSR; the CA writes every other field of the leaf
itself. The checks still refuse anything but "one URI SAN equal to the caller's identity",
so a confused or hostile agent learns precisely why it was refused.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from plait.ca.pki import CertificatePublicKey, acceptable_key
from plait.errors import CsrError, IdentityError
from plait.model.identity import SpiffeId

MAX_CSR_BYTES = 16 * 1024


def _shown(text: str) -> str:
    """A caller-supplied string, quoted and cut short, for an error message."""
    return repr(text[:200] + ("..." if len(text) > 200 else ""))


def checked_public_key(csr_pem: bytes, identity: SpiffeId) -> CertificatePublicKey:
    """The CSR's public key, once the CSR parses, its self-signature verifies, its key is
    strong enough and its only SAN is `identity.uri`.

    Raises CsrError (malformed or unacceptable) or IdentityError (another identity).
    """
    if len(csr_pem) > MAX_CSR_BYTES:
        raise CsrError(f"CSR is larger than {MAX_CSR_BYTES} bytes")
    try:
        csr = x509.load_pem_x509_csr(csr_pem)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise CsrError("not a PEM certificate signing request") from None
    try:
        key = csr.public_key()
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise CsrError("the CSR's public key cannot be read") from None
    why = acceptable_key(key)
    if why is not None or not isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        raise CsrError(why or "the CSR's key type is not accepted")
    try:
        valid = csr.is_signature_valid
    except (ValueError, TypeError, UnsupportedAlgorithm):
        valid = False
    if not valid:
        raise CsrError("the CSR's signature does not verify with the key it carries")
    _check_san(csr, identity)
    return key


def _check_san(csr: x509.CertificateSigningRequest, identity: SpiffeId) -> None:
    want = f"exactly one subjectAltName, the URI {identity.uri}"
    try:
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        raise CsrError(f"the CSR has no subjectAltName; it needs {want}") from None
    except (ValueError, TypeError):
        raise CsrError("the CSR's extensions cannot be parsed") from None
    names = list(san)
    if len(names) != 1:
        raise CsrError(f"the CSR has {len(names)} subjectAltNames; it needs {want}")
    (name,) = names
    if not isinstance(name, x509.UniformResourceIdentifier):
        raise CsrError(f"the CSR's subjectAltName is a {type(name).__name__}; it needs {want}")
    if name.value != identity.uri:
        raise IdentityError(
            f"the CSR asks for {_shown(name.value)}, but the caller is {identity.uri}"
        )
