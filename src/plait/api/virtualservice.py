"""VirtualService (networking.istio.io v1, v1beta1, v1alpha3): the full field set.

Follows istio/api networking/v1alpha3/virtual_service.proto. Besides the CRD schema,
the cross-field rules of Istio's validating webhook are enforced (a rule forwards, redirects,
answers directly or delegates; mirror vs mirrors; weights).
"""

from __future__ import annotations

import base64
import binascii
import difflib
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, Strict, model_validator

from plait.api.common import (
    Bool,
    IstioModel,
    NonEmptyStr,
    ObjectMeta,
    Percent,
    PortNumber,
    PortSelector,
    Str,
    StringMatch,
    StrMap,
    check_one_of,
)
from plait.api.duration import Duration, DurationField
from plait.api.syntax import (
    AUTO_SNI,
    CORS_METHODS,
    cors_header_name,
    gateway_name,
    header_value,
    host_or_ip,
    ip_subnet,
    is_dns_label,
    label_map,
    match_header_name,
    non_empty_header,
    wildcard_domain,
)

NETWORKING_VERSIONS = (
    "networking.istio.io/v1",
    "networking.istio.io/v1beta1",
    "networking.istio.io/v1alpha3",
)
NetworkingVersion = Literal[
    "networking.istio.io/v1", "networking.istio.io/v1beta1", "networking.istio.io/v1alpha3"
]
Weight = Annotated[int, Field(strict=True, ge=0, le=2**31 - 1)]


def _destination_host(value: str) -> str:
    if value == "*":
        raise ValueError("'*' is not a destination host; name the service")
    return wildcard_domain(value)


def _subset_name(value: str) -> str:
    if value and not is_dns_label(value):
        raise ValueError(f"subset name '{value}' is not a DNS label")
    return value


def _source_namespace(value: str) -> str:
    if value and not is_dns_label(value):
        raise ValueError(f"sourceNamespace '{value}' is not a namespace name")
    return value


GatewayName = Annotated[str, Strict(), AfterValidator(gateway_name)]
SourceLabels = Annotated[StrMap, AfterValidator(label_map)]


class Destination(IstioModel):
    host: Annotated[str, Strict(), AfterValidator(_destination_host)]
    subset: Annotated[str, Strict(), AfterValidator(_subset_name)] | None = None
    port: PortSelector | None = None


def _header_values(value: dict[str, str]) -> dict[str, str]:
    for name, text in value.items():
        non_empty_header(name)
        header_value(text)
    return value


HeaderMap = Annotated[StrMap, AfterValidator(_header_values)]


class HeaderOperations(IstioModel):
    """Header changes; Envoy refuses an empty name or a value with a stray `%`."""

    set: HeaderMap = Field(default_factory=dict)
    add: HeaderMap = Field(default_factory=dict)
    remove: tuple[Annotated[str, Strict(), AfterValidator(non_empty_header)], ...] = ()

    def authority(self) -> list[str]:
        """Values given to `:authority`/`host` by `set` and `add`."""
        return [v for m in (self.set, self.add) for k, v in m.items() if k.lower() in _AUTHORITY]


_AUTHORITY = (":authority", "host")


class Headers(IstioModel):
    request: HeaderOperations | None = None
    response: HeaderOperations | None = None


class Delegate(IstioModel):
    name: NonEmptyStr
    namespace: Str | None = None


def _match_headers(value: dict[str, StringMatch]) -> dict[str, StringMatch]:
    for name in value:
        match_header_name(name)
    return value


class HTTPMatchRequest(IstioModel):
    name: Str | None = None
    uri: StringMatch | None = None
    scheme: StringMatch | None = None
    method: StringMatch | None = None
    authority: StringMatch | None = None
    headers: Annotated[dict[Str, StringMatch], AfterValidator(_match_headers)] = Field(
        default_factory=dict
    )
    port: PortNumber | None = None
    source_labels: SourceLabels = Field(default_factory=dict)
    gateways: tuple[GatewayName, ...] = ()
    query_params: dict[Str, StringMatch] = Field(default_factory=dict)
    ignore_uri_case: Bool = False
    without_headers: Annotated[dict[Str, StringMatch], AfterValidator(_match_headers)] = Field(
        default_factory=dict
    )
    source_namespace: Annotated[str, Strict(), AfterValidator(_source_namespace)] | None = None
    stat_prefix: Str | None = None


class HTTPRouteDestination(IstioModel):
    destination: Destination
    weight: Weight | None = None
    headers: Headers | None = None


class RouteDestination(IstioModel):
    destination: Destination
    weight: Weight | None = None


class HTTPRedirect(IstioModel):
    uri: Str | None = None
    authority: Str | None = None
    port: PortNumber | None = None
    derive_port: Literal["FROM_PROTOCOL_DEFAULT", "FROM_REQUEST_PORT"] | None = None
    scheme: Literal["http", "https"] | None = None
    redirect_code: Annotated[int, Field(strict=True, ge=300, le=399)] | None = None
    prefix_rewrite: Str | None = None

    @model_validator(mode="after")
    def _port_choice(self) -> HTTPRedirect:
        check_one_of(self, ("port", "derive_port"), required=False)
        if self.uri and self.prefix_rewrite:
            raise ValueError("a redirect has 'uri' or 'prefixRewrite', not both")
        return self


def _base64(value: str) -> str:
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("'bytes' must be base64-encoded; use 'string' for plain text") from None
    return value


class HTTPBody(IstioModel):
    string: Str | None = None
    bytes: Annotated[str, Field(strict=True), AfterValidator(_base64)] | None = None

    @model_validator(mode="after")
    def _one_body(self) -> HTTPBody:
        check_one_of(self, ("string", "bytes"), required=False)
        return self


class HTTPDirectResponse(IstioModel):
    status: Annotated[int, Field(strict=True, ge=200, le=599)]
    body: HTTPBody | None = None

    @model_validator(mode="after")
    def _size(self) -> HTTPDirectResponse:
        body = self.body
        if body is not None and len(body.string or body.bytes or "") > 1024 * 1024:
            raise ValueError("a direct response body must be less than 1MB (Istio's limit)")
        return self


class RegexRewrite(IstioModel):
    match: NonEmptyStr
    rewrite: NonEmptyStr


class HTTPRewrite(IstioModel):
    uri: Str | None = None
    authority: Str | None = None
    uri_regex_rewrite: RegexRewrite | None = None

    @model_validator(mode="after")
    def _one_uri(self) -> HTTPRewrite:
        check_one_of(self, ("uri", "uri_regex_rewrite"), required=False)
        if self.uri is None and self.uri_regex_rewrite is None and self.authority is None:
            raise ValueError("a rewrite needs 'uri', 'uriRegexRewrite' or 'authority'")
        return self


RETRY_ON = frozenset(
    {
        "5xx",
        "gateway-error",
        "reset",
        "reset-before-request",
        "connect-failure",
        "envoy-ratelimited",
        "retriable-4xx",
        "refused-stream",
        "retriable-status-codes",
        "retriable-headers",
        "http3-post-connect-failure",
        "cancelled",
        "deadline-exceeded",
        "internal",
        "resource-exhausted",
        "unavailable",
    }
)
"""Envoy's retry conditions that Istio accepts in `retryOn` (status codes 100-599 too)."""


def _retry_on(value: str) -> str:
    for part in (p.strip() for p in value.split(",")):
        if part in RETRY_ON or (part.isdigit() and 100 <= int(part) <= 599):
            continue
        close = difflib.get_close_matches(part, sorted(RETRY_ON), 1)
        hint = f"; did you mean '{close[0]}'?" if close else f"; use {', '.join(sorted(RETRY_ON))}"
        raise ValueError(f"'{part}' is not a retry condition{hint}")
    return value


class HTTPRetry(IstioModel):
    attempts: Annotated[int, Field(strict=True, ge=0)] | None = None
    per_try_timeout: DurationField | None = None
    retry_on: Annotated[str, Field(strict=True), AfterValidator(_retry_on)] | None = None
    retry_remote_localities: Bool | None = None
    retry_ignore_previous_hosts: Bool | None = None
    backoff: DurationField | None = None

    @model_validator(mode="after")
    def _disabled(self) -> HTTPRetry:
        configured = (self.per_try_timeout, self.retry_on, self.retry_remote_localities)
        if self.attempts == 0 and any(v is not None for v in configured):
            raise ValueError(
                "'attempts' is 0 (retries off) but 'perTryTimeout', 'retryOn' or "
                "'retryRemoteLocalities' is set; set 'attempts' (Istio refuses this)"
            )
        return self


def _cors_method(value: str) -> str:
    if value not in CORS_METHODS:
        raise ValueError(
            f"'{value}' is not an HTTP method; use one of {', '.join(sorted(CORS_METHODS))}"
        )
    return value


def _origin(value: StringMatch) -> StringMatch:
    if not value.value:
        raise ValueError("an empty allowOrigins match is not allowed")
    return value


def _whole_seconds(value: Duration) -> Duration:
    if value.nanos % 1_000_000_000:
        raise ValueError("'maxAge' is accurate to seconds only; drop the fraction")
    return value


CorsHeader = Annotated[str, Strict(), AfterValidator(cors_header_name)]


class CorsPolicy(IstioModel):
    allow_origin: tuple[Str, ...] = ()
    allow_origins: tuple[Annotated[StringMatch, AfterValidator(_origin)], ...] = ()
    allow_methods: tuple[Annotated[str, Strict(), AfterValidator(_cors_method)], ...] = ()
    allow_headers: tuple[CorsHeader, ...] = ()
    expose_headers: tuple[CorsHeader, ...] = ()
    max_age: Annotated[DurationField, AfterValidator(_whole_seconds)] | None = None
    allow_credentials: Bool | None = None
    unmatched_preflights: Literal["UNSPECIFIED", "FORWARD", "IGNORE"] = "UNSPECIFIED"


class FaultDelay(IstioModel):
    percent: Annotated[int, Field(strict=True, ge=0, le=100)] | None = None
    fixed_delay: DurationField | None = None
    exponential_delay: DurationField | None = None
    percentage: Percent | None = None

    @model_validator(mode="after")
    def _one_delay(self) -> FaultDelay:
        check_one_of(self, ("fixed_delay", "exponential_delay"), required=True)
        return self


GRPC_CODES = (
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
)
"""gRPC status names in code order (google.rpc.Code); Istio's `grpcStatus` takes a name."""


class FaultAbort(IstioModel):
    http_status: Annotated[int, Field(strict=True, ge=200, le=599)] | None = None
    grpc_status: Str | None = None
    http2_error: Str | None = None
    percentage: Percent | None = None

    @model_validator(mode="after")
    def _one_error(self) -> FaultAbort:
        check_one_of(self, ("http_status", "grpc_status", "http2_error"), required=True)
        if self.grpc_status is not None and self.grpc_status not in GRPC_CODES:
            raise ValueError(
                f"'{self.grpc_status}' is not a gRPC status name (e.g. NOT_FOUND, UNAVAILABLE)"
            )
        return self


class HTTPFaultInjection(IstioModel):
    delay: FaultDelay | None = None
    abort: FaultAbort | None = None

    @model_validator(mode="after")
    def _something(self) -> HTTPFaultInjection:
        if self.delay is None and self.abort is None:
            raise ValueError("a fault needs a 'delay', an 'abort' or both")
        return self


class HTTPMirrorPolicy(IstioModel):
    destination: Destination
    percentage: Percent | None = None


class HTTPRoute(IstioModel):
    """One `http` rule. It does exactly one of: `route`, `redirect`, `directResponse`,
    `delegate` (Istio's webhook rules, checked here)."""

    name: Str | None = None
    match: tuple[HTTPMatchRequest, ...] = ()
    route: tuple[HTTPRouteDestination, ...] = ()
    redirect: HTTPRedirect | None = None
    direct_response: HTTPDirectResponse | None = None
    delegate: Delegate | None = None
    rewrite: HTTPRewrite | None = None
    timeout: DurationField | None = None
    retries: HTTPRetry | None = None
    fault: HTTPFaultInjection | None = None
    mirror: Destination | None = None
    mirrors: tuple[HTTPMirrorPolicy, ...] = ()
    mirror_percent: Annotated[int, Field(strict=True, ge=0, le=100)] | None = None
    mirror_percentage: Percent | None = None
    cors_policy: CorsPolicy | None = None
    headers: Headers | None = None

    @model_validator(mode="after")
    def _one_action(self) -> HTTPRoute:
        actions = [
            key
            for key, present in (
                ("route", bool(self.route)),
                ("redirect", self.redirect is not None),
                ("directResponse", self.direct_response is not None),
                ("delegate", self.delegate is not None),
            )
            if present
        ]
        if len(actions) > 1:
            both = "', '".join(actions)
            raise ValueError(f"an HTTP rule can have only one of '{both}'; keep one")
        if not actions:
            raise ValueError(
                "an HTTP rule needs one of 'route', 'redirect', 'directResponse' or 'delegate'"
            )
        for other, present in (("fault", self.fault), ("rewrite", self.rewrite)):
            if present is not None and actions[0] in ("redirect", "directResponse"):
                raise ValueError(f"an HTTP rule with '{actions[0]}' cannot also have '{other}'")
        if self.mirror is not None and self.mirrors:
            raise ValueError("set either 'mirror' or 'mirrors', not both")
        _check_weights(self.route)
        if (
            self.redirect is not None
            and self.redirect.prefix_rewrite
            and any(m.uri is not None and m.uri.prefix is None for m in self.match)
        ):
            raise ValueError(
                "a redirect with 'prefixRewrite' needs every 'uri' match to be a prefix"
            )
        return self


def _check_weights(route: tuple[HTTPRouteDestination, ...] | tuple[RouteDestination, ...]) -> None:
    if len(route) > 1 and sum(d.weight or 0 for d in route) == 0:
        raise ValueError(
            "the destinations of 'route' have no weight in total; give each a 'weight' "
            "(e.g. 80 and 20)"
        )


Subnet = Annotated[str, Strict(), AfterValidator(ip_subnet)]


class L4MatchAttributes(IstioModel):
    destination_subnets: tuple[Subnet, ...] = ()
    port: PortNumber | None = None
    source_subnet: Str | None = None
    source_labels: SourceLabels = Field(default_factory=dict)
    gateways: tuple[GatewayName, ...] = ()
    source_namespace: Str | None = None


class TLSMatchAttributes(IstioModel):
    sni_hosts: Annotated[
        tuple[Annotated[str, Strict(), AfterValidator(host_or_ip)], ...], Field(min_length=1)
    ]
    destination_subnets: tuple[Subnet, ...] = ()
    port: PortNumber | None = None
    source_labels: SourceLabels = Field(default_factory=dict)
    gateways: tuple[GatewayName, ...] = ()
    source_namespace: Str | None = None


class TCPRoute(IstioModel):
    match: tuple[L4MatchAttributes, ...] = ()
    route: Annotated[tuple[RouteDestination, ...], Field(min_length=1)]

    @model_validator(mode="after")
    def _weights(self) -> TCPRoute:
        _check_weights(self.route)
        return self


class TLSRoute(IstioModel):
    match: Annotated[tuple[TLSMatchAttributes, ...], Field(min_length=1)]
    route: Annotated[tuple[RouteDestination, ...], Field(min_length=1)]

    @model_validator(mode="after")
    def _weights(self) -> TLSRoute:
        _check_weights(self.route)
        return self


class VirtualServiceSpec(IstioModel):
    hosts: tuple[Annotated[str, Strict(), AfterValidator(host_or_ip)], ...] = ()
    gateways: tuple[GatewayName, ...] = ()
    http: tuple[HTTPRoute, ...] = ()
    tls: tuple[TLSRoute, ...] = ()
    tcp: tuple[TCPRoute, ...] = ()
    export_to: tuple[Str, ...] = ()

    @model_validator(mode="after")
    def _hosts(self) -> VirtualServiceSpec:
        if "*" in self.hosts and (not self.gateways or "mesh" in self.gateways):
            raise ValueError(
                "host '*' is not allowed for rules that apply to the mesh (sidecars); "
                "bind the VirtualService to a Gateway with 'gateways' or name the hosts"
            )
        if not self.hosts and self.gateways:
            raise ValueError("a delegate VirtualService (no 'hosts') must not set 'gateways'")
        bound = bool(self.gateways) and "mesh" not in self.gateways
        sni = [h for r in self.tls for m in r.match for h in m.sni_hosts]
        auto = [h for h in (*self.hosts, *sni) if AUTO_SNI.match(h)]
        if auto and not bound:
            raise ValueError(f"host '{auto[0]}' is a gateway SNI name; bind to a Gateway to use it")
        if not self.hosts and (self.tls or self.tcp):
            raise ValueError("a delegate VirtualService (no 'hosts') has 'http' rules only")
        if not (self.http or self.tcp or self.tls):
            raise ValueError("a VirtualService needs 'http', 'tcp' or 'tls' rules")
        for i, a in enumerate(self.hosts):
            for b in self.hosts[i + 1 :]:
                if hosts_overlap(a, b):
                    raise ValueError(f"hosts '{a}' and '{b}' overlap; list each host once")
        return self


def hosts_overlap(a: str, b: str) -> bool:
    """Istio's host.Name.Matches: equal, or one wildcard covers the other."""
    a, b = a.lower(), b.lower()
    if a == b:
        return True
    for wild, other in ((a, b), (b, a)):
        if wild.startswith("*") and other.endswith(wild[1:]):
            return True
    return False


class VirtualService(IstioModel):
    """`kind: VirtualService`: how requests to a set of hosts are routed."""

    api_version: NetworkingVersion
    kind: Literal["VirtualService"]
    metadata: ObjectMeta
    spec: VirtualServiceSpec
    status: dict[str, object] | None = None
