"""Workload tokens for local mode: how an agent proves which workload it serves.

`plait up` plays the kubelet: it holds an Ed25519 key (`TokenIssuer`) and hands each
replica a JWT naming its namespace, service account and instance. The control plane
holds only the public key (`TokenVerifier`). Claims follow Kubernetes' projected
service-account tokens where they overlap:

    {"iss": "plait-local", "aud": "plait-ca", "sub": "system:serviceaccount:NS:SA",
     "exp": ..., "iat": ..., "plait/instance": "orders-v1-0"}

Only EdDSA is accepted, and the key is handed to PyJWT as a key object (not PEM text), so
neither `alg: none` nor HS256-keyed-with-the-public-key can pass. Errors carry a short
reason and never the token.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import jwt
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from plait.ca import files
from plait.errors import TokenError
from plait.model.identity import SpiffeId

ISSUER = "plait-local"
AUDIENCE = "plait-ca"
INSTANCE_CLAIM = "plait/instance"
SUBJECT_PREFIX = "system:serviceaccount:"
ALGORITHM = "EdDSA"
MAX_TOKEN_LENGTH = 8192

_SEGMENT = re.compile(r"^[A-Za-z0-9._-]{1,253}$")
_INSTANCE = re.compile(r"^[A-Za-z0-9._:-]{1,253}$")


@dataclass(frozen=True)
class TokenIdentity:
    """Who a verified token says the caller is."""

    namespace: str
    service_account: str
    instance: str

    def spiffe_id(self, trust_domain: str) -> SpiffeId:
        return SpiffeId(trust_domain, self.namespace, self.service_account)


class Authenticator(Protocol):
    """What the CA asks of a token checker: the identity a bearer token proves, or
    TokenError (CaError when it cannot judge now). Local mode: `TokenVerifier`;
    Kubernetes: `kubetokens.TokenReviewVerifier`."""

    async def authenticate(self, token: str) -> TokenIdentity: ...


class TokenIssuer:
    """Mints workload tokens with an Ed25519 key (the local-mode "kubelet")."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key

    def __repr__(self) -> str:
        return "TokenIssuer(<Ed25519 key>)"

    @classmethod
    def generate(cls) -> TokenIssuer:
        """An issuer with a fresh in-memory key (tests)."""
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def load_or_create(cls, key_path: Path) -> TokenIssuer:
        """Load the key at `key_path`, or make one there (mode 0600, directory 0700)."""
        if not key_path.exists():
            files.ensure_private_dir(key_path.parent)
            key = Ed25519PrivateKey.generate()
            files.write_private(
                key_path,
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                ),
            )
            return cls(key)
        try:
            loaded = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm, OSError):
            raise TokenError(
                f"{key_path}: not an unencrypted Ed25519 PEM key; remove it to make a new one "
                "(tokens minted with the old key stop working)"
            ) from None
        if not isinstance(loaded, Ed25519PrivateKey):
            raise TokenError(f"{key_path}: holds a {type(loaded).__name__}, not an Ed25519 key")
        return cls(loaded)

    @property
    def public_key_pem(self) -> bytes:
        return self._key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def mint(
        self,
        namespace: str,
        service_account: str,
        instance: str,
        ttl: dt.timedelta,
        *,
        now: dt.datetime | None = None,
    ) -> str:
        now = now or dt.datetime.now(dt.UTC)
        claims = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": f"{SUBJECT_PREFIX}{namespace}:{service_account}",
            "iat": int(now.timestamp()),
            "exp": int((now + ttl).timestamp()),
            INSTANCE_CLAIM: instance,
        }
        return jwt.encode(claims, self._key, algorithm=ALGORITHM)


class TokenVerifier:
    """Checks workload tokens against the issuer's Ed25519 public key."""

    def __init__(
        self, public_key_pem: bytes | str, *, leeway: dt.timedelta = dt.timedelta(0)
    ) -> None:
        data = public_key_pem.encode() if isinstance(public_key_pem, str) else public_key_pem
        try:
            key = serialization.load_pem_public_key(data)
        except (ValueError, UnsupportedAlgorithm):
            raise TokenError("the token public key is not a PEM public key") from None
        if not isinstance(key, Ed25519PublicKey):
            raise TokenError("the token public key is not an Ed25519 key")
        self._key = key
        self._leeway = leeway

    def __repr__(self) -> str:
        return "TokenVerifier(<Ed25519 public key>)"

    def verify(self, token: str) -> TokenIdentity:
        """The identity in `token`; TokenError with a short reason if it is not valid."""
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
            raise TokenError("token is empty or too long")
        if not token.isascii():
            raise TokenError("token is malformed")
        claims = self._decode(token)
        return identity_of_subject(claims["sub"], claims[INSTANCE_CLAIM])

    async def authenticate(self, token: str) -> TokenIdentity:
        """`verify` (local, no I/O) for the CA server's `Authenticator` seam."""
        return self.verify(token)

    def _decode(self, token: str) -> dict[str, Any]:
        try:
            return jwt.decode(
                token,
                self._key,
                algorithms=[ALGORITHM],
                audience=AUDIENCE,
                issuer=ISSUER,
                leeway=self._leeway,
                options={"require": ["exp", "aud", "iss", "sub", INSTANCE_CLAIM]},
            )
        except jwt.ExpiredSignatureError:
            raise TokenError("token has expired") from None
        except jwt.ImmatureSignatureError:
            raise TokenError("token is not valid yet") from None
        except jwt.InvalidAudienceError:
            raise TokenError(f"token audience is not {AUDIENCE}") from None
        except jwt.InvalidIssuerError:
            raise TokenError(f"token issuer is not {ISSUER}") from None
        except jwt.MissingRequiredClaimError as exc:
            raise TokenError(f"token lacks the {exc.claim!r} claim") from None
        except jwt.InvalidAlgorithmError:
            raise TokenError(f"token algorithm is not {ALGORITHM}") from None
        except jwt.InvalidSignatureError:
            raise TokenError("token signature does not verify") from None
        except (jwt.InvalidTokenError, ValueError, TypeError, KeyError, UnicodeError):
            raise TokenError("token is malformed") from None


def identity_of_subject(sub: object, instance: object) -> TokenIdentity:
    """`system:serviceaccount:NS:SA` and an instance name as an identity, or TokenError."""
    if not isinstance(sub, str) or not sub.startswith(SUBJECT_PREFIX):
        raise TokenError(f"token subject is not {SUBJECT_PREFIX}NAMESPACE:SERVICE_ACCOUNT")
    parts = sub[len(SUBJECT_PREFIX) :].split(":")
    if len(parts) != 2 or not all(_SEGMENT.match(p) for p in parts):
        raise TokenError(f"token subject is not {SUBJECT_PREFIX}NAMESPACE:SERVICE_ACCOUNT")
    if not isinstance(instance, str) or not _INSTANCE.match(instance):
        raise TokenError(f"token {INSTANCE_CLAIM!r} claim is not an instance name")
    return TokenIdentity(namespace=parts[0], service_account=parts[1], instance=instance)
