"""The newer Istio security fields on real proxies and real requests (issue 15): path
templates (`{*}` one segment, `{**}` any), trust domains (`trustDomains`,
`source.trustDomain`) and RequestAuthentication `presence: REQUIRED`."""

from __future__ import annotations

from labkit import Lab, statuses
from test_jwt_e2e import ISSUER, bearer, jwks, token

from policykit import authorization_policy as policy
from policykit import request_authentication

ECHO = "http://echo:8080"


async def test_path_templates_match_one_segment_or_any(lab: Lab) -> None:
    allow = policy(
        "templates",
        """  selector: {matchLabels: {app: echo}}
  rules:
  - to: [{operation: {paths: ['/items/{*}/detail', '/files/{**}']}}]""",
    )
    with lab.config("templates", allow):
        assert statuses(await lab.send(f"{ECHO}/items/42/detail", 3)) == {200: 3}
        assert statuses(await lab.send(f"{ECHO}/files/a/b/c.txt", 3)) == {200: 3}
        # {*} is exactly one segment; anything else is not allowed
        assert statuses(await lab.send(f"{ECHO}/items/4/2/detail", 3)) == {403: 3}
        assert statuses(await lab.send(f"{ECHO}/items/42", 3)) == {403: 3}
        assert statuses(await lab.send(f"{ECHO}/other", 3)) == {403: 3}


async def test_trust_domains_select_callers_by_their_spiffe_domain(lab: Lab) -> None:
    own = policy(
        "own-domain",
        """  selector: {matchLabels: {app: echo}}
  rules:
  - from: [{source: {trustDomains: [cluster.local]}}]""",
    )
    with lab.config("own", own):
        assert statuses(await lab.send(f"{ECHO}/", 3)) == {200: 3}  # client: cluster.local
    other = policy(
        "other-domain",
        """  selector: {matchLabels: {app: echo}}
  rules:
  - when: [{key: source.trustDomain, values: ['*.corp.example']}]""",
    )
    with lab.config("other", other):
        assert statuses(await lab.send(f"{ECHO}/", 3)) == {403: 3}
    deny = policy(
        "deny-own",
        """  selector: {matchLabels: {app: echo}}
  action: DENY
  rules:
  - from: [{source: {notTrustDomains: [elsewhere.example]}}]""",
    )
    with lab.config("deny", deny):
        assert statuses(await lab.send(f"{ECHO}/", 3)) == {403: 3}


async def test_presence_required_refuses_requests_without_a_token(lab: Lab) -> None:
    rules = f"""  selector: {{matchLabels: {{app: echo}}}}
  jwtRules:
  - issuer: {ISSUER}
    jwks: '{jwks()}'
    presence: REQUIRED"""
    with lab.config("required", request_authentication("echo-jwt", rules)):
        missing = await lab.send(f"{ECHO}/", 3)
        assert statuses(missing) == {401: 3}
        assert statuses(await lab.send(f"{ECHO}/", 3, headers=bearer(token()))) == {200: 3}
    optional = rules.replace("REQUIRED", "OPTIONAL")
    with lab.config("optional", request_authentication("echo-jwt", optional)):
        assert statuses(await lab.send(f"{ECHO}/", 3)) == {200: 3}
