"""security.istio.io (v1, v1beta1): PeerAuthentication, AuthorizationPolicy,
RequestAuthentication — models and the checks Istio's own validation makes.

References: https://istio.io/latest/docs/reference/config/security/ (peer_authentication,
authorization-policy, request_authentication, conditions). Semantics (who is selected,
evaluation order, the Envoy mapping) live in `model/security.py` and `translate/rbac.py`,
`translate/jwt.py`, `translate/mtls.py`.
"""

from __future__ import annotations

import ipaddress
import json
import re
from enum import StrEnum
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, Strict, field_validator, model_validator

from plait.api.common import (
    Bool,
    IstioModel,
    NonEmptyStr,
    ObjectMeta,
    Str,
    WorkloadSelector,
)
from plait.api.duration import DurationField

SECURITY_VERSIONS = ("security.istio.io/v1", "security.istio.io/v1beta1")


# --- PeerAuthentication -------------------------------------------------------------------


class MtlsMode(StrEnum):
    UNSET = "UNSET"
    DISABLE = "DISABLE"
    PERMISSIVE = "PERMISSIVE"
    STRICT = "STRICT"


class MutualTls(IstioModel):
    mode: MtlsMode = MtlsMode.UNSET


def _port_keys(value: dict[str, MutualTls]) -> dict[str, MutualTls]:
    for key in value:
        if not key.isdigit() or not 1 <= int(key) <= 65535:
            raise ValueError(f"port '{key}' is not a port number (1-65535)")
    return value


class PeerAuthenticationSpec(IstioModel):
    """`selector` (none: the whole namespace, or the mesh in the root namespace), `mtls`,
    `portLevelMtls` (keys are workload ports, i.e. container/target ports)."""

    selector: WorkloadSelector | None = None
    mtls: MutualTls | None = None
    port_level_mtls: Annotated[dict[Str, MutualTls], AfterValidator(_port_keys)] = Field(
        default_factory=dict
    )

    @field_validator("port_level_mtls", mode="before")
    @classmethod
    def _int_keys(cls, value: object) -> object:
        # YAML keys are ints (`8080:`); keep them as strings for a JSON-shaped map
        if isinstance(value, dict):
            return {str(k): v for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _ports_need_selector(self) -> PeerAuthenticationSpec:
        if self.port_level_mtls and (self.selector is None or not self.selector.match_labels):
            raise ValueError(
                "'portLevelMtls' needs a 'selector' with 'matchLabels' (Istio ignores port "
                "settings on namespace- and mesh-wide policies): add a selector"
            )
        return self


class PeerAuthentication(IstioModel):
    api_version: Literal["security.istio.io/v1", "security.istio.io/v1beta1"]
    kind: Literal["PeerAuthentication"]
    metadata: ObjectMeta
    spec: PeerAuthenticationSpec = Field(default_factory=PeerAuthenticationSpec)
    status: dict[str, object] | None = None


# --- shared by AuthorizationPolicy and RequestAuthentication --------------------------------


def _group(value: str) -> str:
    if value and not re.match(
        r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$", value
    ):
        raise ValueError(f"group '{value}' is not an API group name")
    return value


class PolicyTargetReference(IstioModel):
    """`targetRef`: a Service (or a Gateway) in the policy's namespace."""

    group: Annotated[str, Strict(), AfterValidator(_group)] = ""
    kind: Literal["Service", "Gateway"]
    name: NonEmptyStr
    namespace: Str = ""


def _wildcard(value: str) -> str:
    """Istio's string forms: exact, `prefix*`, `*suffix`, or `*` alone."""
    inner = value[1:-1] if len(value) > 1 else ""
    if "*" in inner:
        raise ValueError(
            f"'{value}': '*' may only stand alone or at the start or end of a value "
            "(exact, 'prefix*', '*suffix')"
        )
    return value


Wild = Annotated[str, Strict(), Field(min_length=1), AfterValidator(_wildcard)]


def _ip_block(value: str) -> str:
    try:
        if "/" in value:
            ipaddress.ip_network(value, strict=False)
        else:
            ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(
            f"'{value}' is not an IP address or CIDR block (e.g. 10.0.0.0/8)"
        ) from None
    return value


IpBlock = Annotated[str, Strict(), AfterValidator(_ip_block)]


def _port_string(value: str) -> str:
    if not value.isdigit() or not 1 <= int(value) <= 65535:
        raise ValueError(f"port '{value}' is not a port number (1-65535), e.g. \"8080\"")
    return value


PortString = Annotated[str, Strict(), AfterValidator(_port_string)]


MATCH_ONE, MATCH_ANY = "{*}", "{**}"
"""Path template operators: one path segment, and any number of segments (last only)."""
_PCHAR = re.compile(r"^[a-zA-Z0-9\-._~%!$&'()+,;:@=]+$")


def is_path_template(value: str) -> bool:
    return MATCH_ONE in value or MATCH_ANY in value


def _path_template(value: str) -> None:
    """Istio's rules (pkg/config/security CheckValidPathTemplate): `{**}` only last,
    no other braces, and literal segments of RFC 3986 pchars."""
    any_seen = False
    for segment in value.strip("/").split("/"):
        if segment in (MATCH_ONE, MATCH_ANY):
            if any_seen:
                raise ValueError(f"path '{value}': '{{**}}' must be the last operator")
            any_seen = segment == MATCH_ANY
            continue
        if "{" in segment or "}" in segment:
            raise ValueError(
                f"path '{value}': only whole segments '{{*}}' and '{{**}}' may use braces"
            )
        if not _PCHAR.match(segment):
            raise ValueError(
                f"path '{value}': segment '{segment}' has characters a URL path cannot"
            )


def _path(value: str) -> str:
    if is_path_template(value):
        _path_template(value)
        return value
    _wildcard(value)
    if not (value.startswith(("/", "*")) or value.endswith("*")):
        raise ValueError(f"path '{value}' must start with '/' (or use '*' forms)")
    return value


Path = Annotated[str, Strict(), Field(min_length=1), AfterValidator(_path)]


def _service_account(value: str) -> str:
    """Istio's forms: `NAMESPACE/SERVICE_ACCOUNT`, or `SERVICE_ACCOUNT` in the policy's
    namespace; no wildcards, at most 320 characters."""
    ns, sep, sa = value.partition("/")
    if "*" in value or len(value) > 320 or (sep and (not ns or not sa or "/" in sa)) or not value:
        raise ValueError(
            f"'{value}' must be NAMESPACE/SERVICE_ACCOUNT or SERVICE_ACCOUNT (no wildcards)"
        )
    return value


ServiceAccountRef = Annotated[str, Strict(), AfterValidator(_service_account)]


def _trust_domain(value: str) -> str:
    _wildcard(value)
    if "/" in value:
        raise ValueError(f"trust domain '{value}' must not contain '/'")
    return value


TrustDomain = Annotated[str, Strict(), Field(min_length=1), AfterValidator(_trust_domain)]


# --- AuthorizationPolicy ------------------------------------------------------------------


class Source(IstioModel):
    """Who sends the request: every field set must match; values of one field are OR'd."""

    principals: tuple[Wild, ...] = ()
    not_principals: tuple[Wild, ...] = ()
    request_principals: tuple[Wild, ...] = ()
    not_request_principals: tuple[Wild, ...] = ()
    namespaces: tuple[Wild, ...] = ()
    not_namespaces: tuple[Wild, ...] = ()
    service_accounts: tuple[ServiceAccountRef, ...] = ()
    not_service_accounts: tuple[ServiceAccountRef, ...] = ()
    ip_blocks: tuple[IpBlock, ...] = ()
    not_ip_blocks: tuple[IpBlock, ...] = ()
    remote_ip_blocks: tuple[IpBlock, ...] = ()
    not_remote_ip_blocks: tuple[IpBlock, ...] = ()
    trust_domains: tuple[TrustDomain, ...] = ()
    not_trust_domains: tuple[TrustDomain, ...] = ()

    @model_validator(mode="after")
    def _not_empty(self) -> Source:
        if not any(getattr(self, name) for name in type(self).model_fields):
            raise ValueError(
                "an empty source matches nothing in Istio's validation; set at least one "
                "field (e.g. 'principals') or leave out this 'from' entry"
            )
        if (self.service_accounts or self.not_service_accounts) and (
            self.principals or self.not_principals
        ):
            raise ValueError("set 'serviceAccounts' or 'principals', not both (as in Istio)")
        if len(self.service_accounts) > 16 or len(self.not_service_accounts) > 16:
            raise ValueError("at most 16 service accounts per field (Istio's limit)")
        return self


class Operation(IstioModel):
    """What is requested: every field set must match; values of one field are OR'd."""

    hosts: tuple[Wild, ...] = ()
    not_hosts: tuple[Wild, ...] = ()
    ports: tuple[PortString, ...] = ()
    not_ports: tuple[PortString, ...] = ()
    methods: tuple[Wild, ...] = ()
    not_methods: tuple[Wild, ...] = ()
    paths: tuple[Path, ...] = ()
    not_paths: tuple[Path, ...] = ()

    @model_validator(mode="after")
    def _not_empty(self) -> Operation:
        if not any(getattr(self, name) for name in type(self).model_fields):
            raise ValueError(
                "an empty operation is refused by Istio's validation; set at least one field "
                "(e.g. 'methods') or leave out this 'to' entry"
            )
        return self


class RuleFrom(IstioModel):
    source: Source


class RuleTo(IstioModel):
    operation: Operation


_HEADER_KEY = re.compile(r"^request\.headers\[[^\[\]]+\]$")
_CLAIM_KEY = re.compile(r"^request\.auth\.claims\[[^\[\]]+\](\[[^\[\]]+\])*$")
FILTER_KEY = re.compile(r"^experimental\.(envoy\.filters\.[^\[\]]+)\[([^\[\]]+)\]$")
"""`experimental.envoy.filters.FILTER[KEY]`: Envoy dynamic metadata of FILTER, at KEY."""
CONDITION_KEYS = (
    "source.ip",
    "remote.ip",
    "source.namespace",
    "source.principal",
    "source.serviceAccount",
    "source.trustDomain",
    "request.auth.principal",
    "request.auth.audiences",
    "request.auth.presenter",
    "destination.ip",
    "destination.port",
    "connection.sni",
)
"""`when` keys besides `request.headers[NAME]` and `request.auth.claims[NAME]...`."""


def _condition_key(value: str) -> str:
    if value in CONDITION_KEYS or any(
        p.match(value) for p in (_HEADER_KEY, _CLAIM_KEY, FILTER_KEY)
    ):
        return value
    if value in _REPLACED_KEYS or value.startswith("destination.labels["):
        raise ValueError(f"condition key '{value}' is {_REPLACED_KEYS.get(value, _LABELS_KEY)}")
    raise ValueError(
        f"unknown condition key '{value}'; use request.headers[NAME], "
        f"request.auth.claims[NAME], experimental.envoy.filters.FILTER[KEY] or one of "
        f"{', '.join(CONDITION_KEYS)}"
    )


_LABELS_KEY = "replaced by the policy's selector"
_REPLACED_KEYS = {
    "destination.namespace": "replaced by the policy's metadata.namespace",
    "destination.name": "only supported in Istio's v1alpha1 RBAC",
    "destination.user": "only supported in Istio's v1alpha1 RBAC",
}


class Condition(IstioModel):
    key: Annotated[str, Strict(), AfterValidator(_condition_key)]
    values: tuple[Str, ...] = ()
    not_values: tuple[Str, ...] = ()

    @model_validator(mode="after")
    def _values(self) -> Condition:
        if not self.values and not self.not_values:
            raise ValueError("a condition needs 'values' or 'notValues'")
        if self.key in ("source.ip", "remote.ip", "destination.ip"):
            for value in (*self.values, *self.not_values):
                _ip_block(value)
        if self.key == "destination.port":
            for value in (*self.values, *self.not_values):
                _port_string(value)
        if "" in (*self.values, *self.not_values):
            raise ValueError(f"an empty value is not allowed for key {self.key}")
        if self.key == "source.serviceAccount":
            for value in (*self.values, *self.not_values):
                _service_account(value)
        if self.key == "source.trustDomain":
            for value in (*self.values, *self.not_values):
                _wildcard(value)
        return self


class Rule(IstioModel):
    """A rule matches when any `from`, any `to` and every `when` match (a part left out
    matches everything)."""

    from_: tuple[RuleFrom, ...] = Field(default=(), alias="from")
    to: tuple[RuleTo, ...] = ()
    when: tuple[Condition, ...] = ()


class Action(StrEnum):
    ALLOW = "ALLOW"
    DENY = "DENY"
    AUDIT = "AUDIT"
    CUSTOM = "CUSTOM"


class ExtensionProvider(IstioModel):
    name: NonEmptyStr


class AuthorizationPolicySpec(IstioModel):
    selector: WorkloadSelector | None = None
    target_ref: PolicyTargetReference | None = None
    target_refs: tuple[PolicyTargetReference, ...] = ()
    rules: tuple[Rule, ...] = ()
    action: Action = Action.ALLOW
    provider: ExtensionProvider | None = None

    @model_validator(mode="after")
    def _checks(self) -> AuthorizationPolicySpec:
        _one_target(self.selector, self.target_ref, self.target_refs)
        if self.action is Action.CUSTOM and self.provider is None:
            raise ValueError("action CUSTOM needs a 'provider'")
        if self.provider is not None and self.action is not Action.CUSTOM:
            raise ValueError("'provider' is only used with action CUSTOM")
        return self


class AuthorizationPolicy(IstioModel):
    api_version: Literal["security.istio.io/v1", "security.istio.io/v1beta1"]
    kind: Literal["AuthorizationPolicy"]
    metadata: ObjectMeta
    spec: AuthorizationPolicySpec = Field(default_factory=AuthorizationPolicySpec)
    status: dict[str, object] | None = None

    @model_validator(mode="after")
    def _dry_run_value(self) -> AuthorizationPolicy:
        value = self.metadata.annotations.get(DRY_RUN_ANNOTATION)
        if value is None:
            return self
        if self.spec.action not in (Action.ALLOW, Action.DENY):
            raise ValueError(
                f"annotation {DRY_RUN_ANNOTATION} only works with action ALLOW or DENY "
                f"(Istio), not {self.spec.action.value}"
            )
        if value not in _GO_TRUE and value not in _GO_FALSE:
            raise ValueError(
                f"annotation {DRY_RUN_ANNOTATION}: '{value}' is not a boolean Istio reads; "
                'use "true" or "false"'
            )
        return self

    @property
    def denies_all(self) -> bool:
        """`spec: {}` (ALLOW with no rules): Istio's "deny everything" policy."""
        return self.spec.action is Action.ALLOW and not self.spec.rules


DRY_RUN_ANNOTATION = "istio.io/dry-run"
_GO_TRUE = frozenset(("1", "t", "T", "TRUE", "true", "True"))
_GO_FALSE = frozenset(("0", "f", "F", "FALSE", "false", "False"))
"""The strings Go's strconv.ParseBool accepts, as Istio reads the annotation."""


def is_dry_run(policy: AuthorizationPolicy) -> bool:
    """The policy is only logged (shadow rules), as Istio reads `istio.io/dry-run`."""
    return policy.metadata.annotations.get(DRY_RUN_ANNOTATION, "") in _GO_TRUE


def _one_target(
    selector: WorkloadSelector | None,
    target_ref: PolicyTargetReference | None,
    target_refs: tuple[PolicyTargetReference, ...],
) -> None:
    set_ = [
        name
        for name, value in (
            ("selector", selector),
            ("targetRef", target_ref),
            ("targetRefs", target_refs or None),
        )
        if value is not None
    ]
    if len(set_) > 1:
        raise ValueError(f"set only one of 'selector', 'targetRef' or 'targetRefs', not {set_}")


# --- RequestAuthentication ------------------------------------------------------------------


class JwtHeader(IstioModel):
    name: NonEmptyStr
    prefix: Str = ""


class ClaimToHeader(IstioModel):
    header: Annotated[str, Strict(), Field(pattern=r"^[-_A-Za-z0-9]+$")]
    claim: NonEmptyStr


def _jwks(value: str) -> str:
    try:
        doc = json.loads(value)
    except ValueError as exc:
        raise ValueError(f"'jwks' is not JSON: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
        raise ValueError("'jwks' must be a JSON Web Key Set: an object with a 'keys' list")
    return value


def _jwks_uri(value: str) -> str:
    if not re.match(r"^https?://[^/\s]+", value):
        raise ValueError(f"'{value}' is not an http:// or https:// URL")
    try:
        urlsplit(value).port  # noqa: B018 (raises on a port that is not a number)
    except ValueError:
        raise ValueError(f"'{value}': the port is not a number") from None
    return value


class JwtPresence(StrEnum):
    """Whether a request must carry this rule's token (OPTIONAL: only a present token is
    checked; REQUIRED: a request without one is refused with 401)."""

    OPTIONAL = "OPTIONAL"
    REQUIRED = "REQUIRED"


class JwtRule(IstioModel):
    """`issuer` and/or `jwksUri` (Istio needs one of them); keys from `jwks`, `jwksUri`, or
    the issuer's OpenID discovery document when neither is set."""

    issuer: Str = ""
    audiences: tuple[NonEmptyStr, ...] = ()
    jwks_uri: Annotated[str, Strict(), AfterValidator(_jwks_uri)] | None = None
    jwks: Annotated[str, Strict(), AfterValidator(_jwks)] | None = None
    from_headers: tuple[JwtHeader, ...] = ()
    from_params: tuple[NonEmptyStr, ...] = ()
    from_cookies: tuple[NonEmptyStr, ...] = ()
    output_payload_to_header: NonEmptyStr | None = None
    output_claim_to_headers: tuple[ClaimToHeader, ...] = ()
    forward_original_token: Bool = False
    timeout: DurationField | None = None
    presence: JwtPresence = JwtPresence.OPTIONAL
    space_delimited_claims: Annotated[tuple[NonEmptyStr, ...], Field(max_length=64)] = ()

    @model_validator(mode="after")
    def _keys(self) -> JwtRule:
        if not self.issuer and not self.jwks_uri:
            raise ValueError("set 'issuer' or 'jwksUri' (Istio needs one of them)")
        return self


class RequestAuthenticationSpec(IstioModel):
    selector: WorkloadSelector | None = None
    target_ref: PolicyTargetReference | None = None
    target_refs: tuple[PolicyTargetReference, ...] = ()
    jwt_rules: tuple[JwtRule, ...] = ()

    @model_validator(mode="after")
    def _checks(self) -> RequestAuthenticationSpec:
        _one_target(self.selector, self.target_ref, self.target_refs)
        return self


class RequestAuthentication(IstioModel):
    api_version: Literal["security.istio.io/v1", "security.istio.io/v1beta1"]
    kind: Literal["RequestAuthentication"]
    metadata: ObjectMeta
    spec: RequestAuthenticationSpec = Field(default_factory=RequestAuthenticationSpec)
    status: dict[str, object] | None = None
