"""Workload identity from Kubernetes: the CA checks a pod's projected service-account
token with a TokenReview (authentication.k8s.io/v1), as istiod does.

The review asks for plait's audience (`plait-ca`); the API server answers `authenticated`
only if the signature, expiry and audience hold *and* the objects the token is bound to
(its service account, and its pod for a projected token) still exist, so a deleted pod's
token stops working (after the API server's token cache: 10 s, measured in the e2e). The identity is the user the API server names,
`system:serviceaccount:NS:SA`; anything else (a user's or a node's token) is refused.
The pod's name, when the token is bound to one, is the instance.

Failure model: a token the API server rejects is a TokenError (the CA answers 401); an
API server that cannot be asked (unreachable, or the control plane lacks `create` on
`tokenreviews`) is a TokenReviewError (503: the agent retries, the token was not judged).
Neither message holds the token.
"""

from __future__ import annotations

from lightkube import ApiError, AsyncClient
from lightkube.models.authentication_v1 import TokenReviewSpec
from lightkube.resources.authentication_v1 import TokenReview

from plait.ca.tokens import MAX_TOKEN_LENGTH, TokenIdentity, identity_of_subject
from plait.errors import TokenError, TokenReviewError

POD_NAME_EXTRA = "authentication.kubernetes.io/pod-name"


class TokenReviewVerifier:
    """Authenticates projected service-account tokens against the API server."""

    def __init__(self, client: AsyncClient, audience: str = "plait-ca") -> None:
        self.client = client
        self.audience = audience
        self.reviews = 0

    def __repr__(self) -> str:
        return f"TokenReviewVerifier(audience={self.audience!r})"

    async def authenticate(self, token: str) -> TokenIdentity:
        if not token or len(token) > MAX_TOKEN_LENGTH or not token.isascii():
            raise TokenError("token is empty, too long or malformed")
        review = TokenReview(spec=TokenReviewSpec(token=token, audiences=[self.audience]))
        try:
            answer = await self.client.create(review)
        except ApiError as exc:
            raise TokenReviewError(
                f"the API server refused the TokenReview: {exc.status.message}"
            ) from None
        except Exception as exc:  # httpx transport errors: the API server is away
            raise TokenReviewError(f"cannot reach the API server: {type(exc).__name__}") from None
        self.reviews += 1
        status = answer.status
        if status is None or not status.authenticated or status.user is None:
            reason = (status.error if status is not None else None) or "not authenticated"
            raise TokenError(f"the API server did not accept the token: {_short(reason)}")
        if self.audience not in (status.audiences or [self.audience]):
            raise TokenError(f"token audience is not {self.audience}")
        pods = (status.user.extra or {}).get(POD_NAME_EXTRA) or []
        return identity_of_subject(status.user.username or "", pods[0] if pods else "unbound")


def _short(reason: str) -> str:
    """The API server's reason without anything that could echo the token."""
    return reason.split("\n", 1)[0][:200]
