"""DestinationRule (networking.istio.io v1, v1beta1, v1alpha3): the full field set.

Follows istio/api networking/v1alpha3/destination_rule.proto, with the CRD's limits
(percentages, ports, durations of at least 1ms) and the protobuf oneofs enforced.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, Strict, model_validator

from plait.api.common import (
    Bool,
    IstioModel,
    NonEmptyStr,
    NonNegInt,
    ObjectMeta,
    PortNumber,
    PortSelector,
    Str,
    StrMap,
    UInt32,
    WorkloadSelector,
    check_one_of,
    dns_label,
    first_repeated,
    is_ip,
    set_among,
)
from plait.api.duration import DurationField, ZeroOkDuration
from plait.api.syntax import fqdn, is_prime, label_map, wildcard_domain
from plait.api.virtualservice import HTTPRetry, NetworkingVersion

PercentInt = Annotated[int, Field(strict=True, ge=0, le=100)]
PercentFloat = Annotated[float, Field(strict=True, ge=0, le=100)]
SimpleLB = Literal[
    "UNSPECIFIED", "LEAST_CONN", "RANDOM", "PASSTHROUGH", "ROUND_ROBIN", "LEAST_REQUEST"
]
ClientTLSMode = Literal["DISABLE", "SIMPLE", "MUTUAL", "ISTIO_MUTUAL"]


class RingHash(IstioModel):
    minimum_ring_size: UInt32 | None = None


class MagLev(IstioModel):
    table_size: UInt32 | None = None

    @model_validator(mode="after")
    def _prime(self) -> MagLev:
        size = self.table_size
        if size is None:
            return self  # Istio refuses this too: analysis/istio.py
        if size >= 5000011 or not envoy_prime(size):
            raise ValueError(
                f"maglev 'tableSize' {size} must be a prime below 5000011 (Envoy refuses "
                "others), e.g. 65537"
            )
        return self


def envoy_prime(n: int) -> bool:
    """Envoy's Primes::isPrime (common/utility.cc), which Istio copies: 1, 2, 3 count."""
    return 0 < n < 4 or is_prime(n)


class CookieAttribute(IstioModel):
    name: NonEmptyStr
    value: Str | None = None


class HTTPCookie(IstioModel):
    name: NonEmptyStr
    path: Str | None = None
    ttl: ZeroOkDuration | None = None
    attributes: tuple[CookieAttribute, ...] = ()

    @model_validator(mode="after")
    def _unique(self) -> HTTPCookie:
        repeated = first_repeated([a.name for a in self.attributes])
        if repeated is not None:
            raise ValueError(f"cookie attribute '{repeated}' is listed twice")
        return self


class ConsistentHashLB(IstioModel):
    """Hash key: one of `httpHeaderName`, `httpCookie`, `useSourceIp`,
    `httpQueryParameterName`; algorithm: `ringHash` or `maglev`."""

    http_header_name: Str | None = None
    http_cookie: HTTPCookie | None = None
    use_source_ip: Bool | None = None
    http_query_parameter_name: Str | None = None
    ring_hash: RingHash | None = None
    maglev: MagLev | None = None
    minimum_ring_size: UInt32 | None = None

    @model_validator(mode="after")
    def _oneofs(self) -> ConsistentHashLB:
        keys = ("http_header_name", "http_cookie", "use_source_ip", "http_query_parameter_name")
        check_one_of(self, keys, required=False)
        check_one_of(self, ("ring_hash", "maglev"), required=False)
        if self.minimum_ring_size is not None and (self.ring_hash or self.maglev):
            raise ValueError("set 'minimumRingSize' or 'ringHash'/'maglev', not both")
        return self


class LocalityDistribute(IstioModel):
    from_: Str | None = Field(default=None, alias="from")
    to: dict[Str, UInt32] = Field(default_factory=dict)


class LocalityFailover(IstioModel):
    from_: Str | None = Field(default=None, alias="from")
    to: Str | None = None


class LocalityLoadBalancerSetting(IstioModel):
    distribute: tuple[LocalityDistribute, ...] = ()
    failover: tuple[LocalityFailover, ...] = ()
    failover_priority: tuple[Str, ...] = ()
    enabled: Bool | None = None


class ZoneAwareLoadBalancerSetting(IstioModel):
    enabled: Bool | None = None
    failover: tuple[LocalityFailover, ...] = ()
    failover_priority: tuple[Str, ...] = ()
    min_cluster_size: Annotated[int, Field(strict=True, ge=1)] | None = None


class WarmupConfiguration(IstioModel):
    duration: DurationField
    minimum_percent: PercentFloat | None = None
    aggression: Annotated[float, Field(strict=True, gt=0)] | None = None


class LoadBalancerSettings(IstioModel):
    """`simple` or `consistentHash` (a oneof), plus locality and warmup settings."""

    simple: SimpleLB | None = None
    consistent_hash: ConsistentHashLB | None = None
    locality_lb_setting: LocalityLoadBalancerSetting | None = None
    zone_aware_lb_setting: ZoneAwareLoadBalancerSetting | None = None
    warmup_duration_secs: DurationField | None = None
    warmup: WarmupConfiguration | None = None

    @model_validator(mode="after")
    def _policy(self) -> LoadBalancerSettings:
        check_one_of(self, ("simple", "consistent_hash"), required=False)
        check_one_of(self, ("locality_lb_setting", "zone_aware_lb_setting"), required=False)
        return self


class TcpKeepalive(IstioModel):
    probes: UInt32 | None = None
    time: DurationField | None = None
    interval: DurationField | None = None


class TCPSettings(IstioModel):
    max_connections: NonNegInt | None = None
    connect_timeout: DurationField | None = None
    tcp_keepalive: TcpKeepalive | None = None
    max_connection_duration: DurationField | None = None
    idle_timeout: ZeroOkDuration | None = None


class ConnectionKeepalive(IstioModel):
    """`http2KeepAlive`: Istio needs both fields."""

    interval: DurationField
    timeout: DurationField


class HTTPSettings(IstioModel):
    http1_max_pending_requests: NonNegInt | None = None
    http2_max_requests: NonNegInt | None = None
    max_requests_per_connection: NonNegInt | None = None
    max_retries: NonNegInt | None = None
    idle_timeout: DurationField | None = None
    h2_upgrade_policy: Literal["DEFAULT", "DO_NOT_UPGRADE", "UPGRADE"] = "DEFAULT"
    use_client_protocol: Bool = False
    max_concurrent_streams: NonNegInt | None = None
    http2_keep_alive: ConnectionKeepalive | None = None


class ConnectionPoolSettings(IstioModel):
    tcp: TCPSettings | None = None
    http: HTTPSettings | None = None

    @model_validator(mode="after")
    def _some(self) -> ConnectionPoolSettings:
        if self.tcp is None and self.http is None:
            raise ValueError("a connection pool needs 'tcp' or 'http' settings")
        return self


class OutlierDetection(IstioModel):
    consecutive_errors: NonNegInt | None = None
    split_external_local_origin_errors: Bool = False
    consecutive_local_origin_failures: UInt32 | None = None
    consecutive_gateway_errors: UInt32 | None = None
    consecutive_5xx_errors: UInt32 | None = Field(default=None, alias="consecutive5xxErrors")
    interval: DurationField | None = None
    base_ejection_time: DurationField | None = None
    max_ejection_percent: PercentInt | None = None
    min_health_percent: PercentInt | None = None
    outlier_detection_http_error_codes: tuple[
        Annotated[int, Field(strict=True, ge=100, le=599)], ...
    ] = ()


class ClientTLSSettings(IstioModel):
    mode: ClientTLSMode = "DISABLE"
    client_certificate: Str | None = None
    private_key: Str | None = None
    ca_certificates: Str | None = None
    credential_name: Str | None = None
    subject_alt_names: tuple[Str, ...] = ()
    sni: Str | None = None
    insecure_skip_verify: Bool | None = None
    ca_crl: Str | None = None

    @model_validator(mode="after")
    def _mutual(self) -> ClientTLSSettings:
        missing = self.client_certificate is None or self.private_key is None
        if self.mode == "MUTUAL" and not self.credential_name and missing:
            raise ValueError(
                "MUTUAL TLS needs 'credentialName', or both 'clientCertificate' and 'privateKey'"
            )
        if self.insecure_skip_verify and self.mode in ("SIMPLE", "MUTUAL"):
            verifying = [
                name
                for name, on in (
                    ("caCertificates", bool(self.ca_certificates)),
                    ("credentialName", self.mode == "SIMPLE" and bool(self.credential_name)),
                    ("subjectAltNames", bool(self.subject_alt_names)),
                )
                if on
            ]
            if verifying:
                raise ValueError(
                    f"'insecureSkipVerify: true' skips verification; remove '{verifying[0]}' "
                    "or the skip"
                )
        if self.mode in ("SIMPLE", "MUTUAL") and self.credential_name:
            files = (self.client_certificate, self.ca_certificates, self.private_key, self.ca_crl)
            if any(files):
                raise ValueError(
                    "with 'credentialName' the certificates come from the secret; remove "
                    "'clientCertificate', 'privateKey', 'caCertificates' and 'caCrl'"
                )
        return self


class PortTrafficPolicy(IstioModel):
    port: PortSelector
    load_balancer: LoadBalancerSettings | None = None
    connection_pool: ConnectionPoolSettings | None = None
    outlier_detection: OutlierDetection | None = None
    tls: ClientTLSSettings | None = None

    @model_validator(mode="after")
    def _some(self) -> PortTrafficPolicy:
        if not set_among(self, ("load_balancer", "connection_pool", "outlier_detection", "tls")):
            raise ValueError("a port traffic policy needs at least one setting besides 'port'")
        return self


def _tunnel_host(value: str) -> str:
    if not is_ip(value):
        fqdn(value)
    return value


class TunnelSettings(IstioModel):
    protocol: Literal["CONNECT", "POST"] | None = None
    target_host: Annotated[str, Strict(), AfterValidator(_tunnel_host)]
    target_port: PortNumber


class ProxyProtocol(IstioModel):
    version: Literal["V1", "V2"] = "V1"


class RetryBudget(IstioModel):
    percent: PercentFloat | None = None
    min_retry_concurrency: UInt32 | None = None
    budget_interval: ZeroOkDuration | None = None


class PlaitTimeouts(IstioModel):
    """plait extension (`trafficPolicy.timeout`): not an Istio field, see `TrafficPolicy`."""

    http: ZeroOkDuration | None = None
    connect_timeout: DurationField | None = None


class TrafficPolicy(IstioModel):
    """Istio's TrafficPolicy, plus two plait extensions some guides show on DestinationRules.

    `retryPolicy` and `timeout` are not valid Istio (there they belong on the VirtualService
    route, `spec.http[].retries` / `spec.http[].timeout`, and the TCP connect timeout on
    `connectionPool.tcp.connectTimeout`). plait accepts them so that such YAML does what
    its author meant, applies them to routes that set nothing themselves, and warns with
    the standard field to use (`api/applied.py` EXTENSIONS).
    """

    load_balancer: LoadBalancerSettings | None = None
    connection_pool: ConnectionPoolSettings | None = None
    outlier_detection: OutlierDetection | None = None
    tls: ClientTLSSettings | None = None
    port_level_settings: tuple[PortTrafficPolicy, ...] = ()
    tunnel: TunnelSettings | None = None
    proxy_protocol: ProxyProtocol | None = None
    retry_budget: RetryBudget | None = None
    retry_policy: HTTPRetry | None = None  # plait extension
    timeout: PlaitTimeouts | None = None  # plait extension

    @model_validator(mode="after")
    def _unique_ports(self) -> TrafficPolicy:
        if not self.model_fields_set:
            raise ValueError("a traffic policy needs at least one setting")
        numbers = [p.port.number for p in self.port_level_settings]
        repeated = first_repeated(numbers)
        if repeated is not None:
            raise ValueError(f"'portLevelSettings' lists port {repeated} more than once")
        return self


class Subset(IstioModel):
    name: Annotated[str, Field(strict=True), AfterValidator(dns_label)]
    labels: Annotated[StrMap, AfterValidator(label_map)] = Field(default_factory=dict)
    traffic_policy: TrafficPolicy | None = None


class DestinationRuleSpec(IstioModel):
    host: Annotated[str, Strict(), AfterValidator(wildcard_domain)]
    traffic_policy: TrafficPolicy | None = None
    subsets: tuple[Subset, ...] = ()
    export_to: tuple[Str, ...] = ()
    workload_selector: WorkloadSelector | None = None

    @model_validator(mode="after")
    def _unique_subsets(self) -> DestinationRuleSpec:
        names = [s.name for s in self.subsets]
        repeated = first_repeated(names)
        if repeated is not None:
            raise ValueError(f"subset name '{repeated}' is used more than once")
        return self


class DestinationRule(IstioModel):
    """`kind: DestinationRule`: policies for traffic to a host, and its named subsets."""

    api_version: NetworkingVersion
    kind: Literal["DestinationRule"]
    metadata: ObjectMeta
    spec: DestinationRuleSpec
    status: dict[str, object] | None = None
