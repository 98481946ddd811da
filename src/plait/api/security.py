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

from pydantic import AfterValidator, Field, Strict, field_validator, model_validator

from plait.api.common import (
    Bool,
    IstioModel,
    NonEmptyStr,
    ObjectMeta,
    Str,
    WorkloadSelector,
    check_one_of,
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


class PolicyTargetReference(IstioModel):
    """`targetRef`: a Service (or a Gateway) in the policy's namespace."""

    group: Str = ""
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


def _path(value: str) -> str:
    _wildcard(value)
    if not (value.startswith(("/", "*")) or value.endswith("*")):
        raise ValueError(f"path '{value}' must start with '/' (or use '*' forms)")
    return value


Path = Annotated[str, Strict(), Field(min_length=1), AfterValidator(_path)]


def _service_account(value: str) -> str:
    ns, sep, sa = value.partition("/")
    if not sep or not ns or not sa or "/" in sa:
        raise ValueError(f"'{value}' must be NAMESPACE/SERVICE_ACCOUNT (no wildcards)")
    return value


ServiceAccountRef = Annotated[str, Strict(), AfterValidator(_service_account)]


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
CONDITION_KEYS = (
    "source.ip",
    "remote.ip",
    "source.namespace",
    "source.principal",
    "source.serviceAccount",
    "request.auth.principal",
    "request.auth.audiences",
    "request.auth.presenter",
    "destination.ip",
    "destination.port",
    "connection.sni",
)
"""`when` keys besides `request.headers[NAME]` and `request.auth.claims[NAME]...`."""


def _condition_key(value: str) -> str:
    if value in CONDITION_KEYS or _HEADER_KEY.match(value) or _CLAIM_KEY.match(value):
        return value
    raise ValueError(
        f"unknown condition key '{value}'; use request.headers[NAME], "
        f"request.auth.claims[NAME] or one of {', '.join(CONDITION_KEYS)}"
    )


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

    @property
    def denies_all(self) -> bool:
        """`spec: {}` (ALLOW with no rules): Istio's "deny everything" policy."""
        return self.spec.action is Action.ALLOW and not self.spec.rules


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
    header: NonEmptyStr
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
    return value


class JwtRule(IstioModel):
    issuer: NonEmptyStr
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

    @model_validator(mode="after")
    def _keys(self) -> JwtRule:
        check_one_of(self, ("jwks_uri", "jwks"), required=True)
        return self


class RequestAuthenticationSpec(IstioModel):
    selector: WorkloadSelector | None = None
    target_ref: PolicyTargetReference | None = None
    target_refs: tuple[PolicyTargetReference, ...] = ()
    jwt_rules: tuple[JwtRule, ...] = ()

    @model_validator(mode="after")
    def _checks(self) -> RequestAuthenticationSpec:
        _one_target(self.selector, self.target_ref, self.target_refs)
        issuers = [r.issuer for r in self.jwt_rules]
        for issuer in issuers:
            if issuers.count(issuer) > 1:
                raise ValueError(f"issuer '{issuer}' has more than one jwtRule")
        return self


class RequestAuthentication(IstioModel):
    api_version: Literal["security.istio.io/v1", "security.istio.io/v1beta1"]
    kind: Literal["RequestAuthentication"]
    metadata: ObjectMeta
    spec: RequestAuthenticationSpec = Field(default_factory=RequestAuthenticationSpec)
    status: dict[str, object] | None = None
