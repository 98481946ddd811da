"""TokenReviewVerifier's reading of the API server's answer (the real API server is in
tests/e2e/kube/test_tokenreview_e2e.py): who is accepted, what is refused, and an API
server that cannot be asked is not a verdict on the token."""

from __future__ import annotations

from typing import Any, cast

import pytest
from lightkube import ApiError, AsyncClient
from lightkube.models.authentication_v1 import TokenReviewStatus, UserInfo
from lightkube.models.meta_v1 import Status
from lightkube.resources.authentication_v1 import TokenReview

from plait.ca.kubetokens import TokenReviewVerifier
from plait.errors import TokenError, TokenReviewError


class FakeClient:
    """Answers each create() with `status` (or raises `error`); records the reviews."""

    def __init__(self, status: TokenReviewStatus | None = None, error: Exception | None = None):
        self.status, self.error = status, error
        self.asked: list[TokenReview] = []

    async def create(self, review: TokenReview) -> TokenReview:
        self.asked.append(review)
        if self.error is not None:
            raise self.error
        return TokenReview(spec=review.spec, status=self.status)


def verifier(client: FakeClient) -> TokenReviewVerifier:
    return TokenReviewVerifier(cast(AsyncClient, client))


def accepted(
    username: str, extra: dict[str, Any] | None = None, audiences: list[str] | None = None
) -> TokenReviewStatus:
    return TokenReviewStatus(
        authenticated=True,
        user=UserInfo(username=username, extra=extra),
        audiences=audiences if audiences is not None else ["plait-ca"],
    )


async def test_a_service_account_token_is_its_namespace_and_account() -> None:
    client = FakeClient(accepted("system:serviceaccount:shop:orders",
                                 {"authentication.kubernetes.io/pod-name": ["orders-7f-x"]}))  # fmt: skip
    who = await verifier(client).authenticate("tok")
    assert (who.namespace, who.service_account, who.instance) == ("shop", "orders", "orders-7f-x")
    (review,) = client.asked
    assert review.spec.token == "tok" and review.spec.audiences == ["plait-ca"]


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (TokenReviewStatus(authenticated=False, error='token audiences ["vault"] is invalid'),
         "did not accept the token: token audiences"),
        (accepted("alice"), "system:serviceaccount:"),
        (accepted("system:node:node-1"), "system:serviceaccount:"),
        (accepted("system:serviceaccount:shop:orders", audiences=["vault"]), "audience"),
    ],
)  # fmt: skip
async def test_refused(status: TokenReviewStatus, message: str) -> None:
    with pytest.raises(TokenError, match=message):
        await verifier(FakeClient(status)).authenticate("tok")


async def test_an_empty_or_huge_token_is_not_sent() -> None:
    client = FakeClient(accepted("system:serviceaccount:a:b"))
    for bad in ("", "x" * 9000, "tök"):
        with pytest.raises(TokenError):
            await verifier(client).authenticate(bad)
    assert client.asked == []


async def test_an_api_server_that_cannot_be_asked_is_a_review_error_not_a_verdict() -> None:
    forbidden = ApiError(status=Status(code=403, message="tokenreviews is forbidden"))
    with pytest.raises(TokenReviewError, match="tokenreviews is forbidden"):
        await verifier(FakeClient(error=forbidden)).authenticate("tok")
    with pytest.raises(TokenReviewError, match="cannot reach"):
        await verifier(FakeClient(error=ConnectionRefusedError("refused"))).authenticate("tok")
