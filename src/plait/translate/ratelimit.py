"""RateLimit → Envoy local rate limiting on a sidecar's inbound route table.

The `envoy.filters.http.local_ratelimit` filter sits idle in every HTTP connection
manager (`httpfilters`); a proxy that some RateLimit selects gets it switched on in its
inbound virtual host. The mapping:

- **One bucket per limit.** A per-route filter config would give each Envoy route its own
  token bucket, so a limit whose `match` lists several alternatives (several routes) would
  admit its rate once per alternative. Instead the virtual host carries one
  `LocalRateLimit` whose `descriptors` hold a bucket per limit; each route of a limit
  names its bucket in its metadata (`plait.ratelimit: {limit: KEY}`), which the filter's
  own `rate_limits` action turns into the descriptor (route-level `rate_limits` for the
  local filter are deprecated). `always_consume_default_token_bucket` is off, so a request
  spends one token, from its limit's bucket only.
- **First matching limit applies.** Each limit's matches become routes ahead of the
  catch-all route to the app, in order: the matched limits of every RateLimit selecting
  the proxy (RateLimits ordered by name), then the first limit without `match` — the
  service-wide one, which is the filter's default bucket on the catch-all route. Without a
  service-wide limit the catch-all route disables the filter, so unmatched requests are
  neither counted nor given rate-limit headers.
- **Token bucket.** `burst` tokens at most (default `requests`), refilled with `requests`
  tokens per `unit`/`interval`. The bucket belongs to the Envoy process: shared by its
  worker threads, separate per replica (N replicas admit N times the rate). Envoy 1.40
  refills continuously (`requests / period`), not in steps. A bucket starts full whenever
  the proxy's inbound route table changes.
- **Rejections** answer `statusCode` (default 429) with
  `x-local-rate-limit: true` and the draft-03 headers `x-ratelimit-limit`,
  `x-ratelimit-remaining`, `x-ratelimit-reset`, which Envoy also adds to admitted
  responses of a limited route. One config holds every bucket, so when several RateLimits
  select one proxy the first one's `statusCode` applies to all of them.

Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from envoy.config.core.v3 import base_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.extensions.common.ratelimit.v3 import ratelimit_pb2
from envoy.extensions.filters.http.local_ratelimit.v3 import local_rate_limit_pb2 as lrl
from envoy.type.matcher.v3 import regex_pb2, string_pb2
from envoy.type.metadata.v3 import metadata_pb2
from envoy.type.v3 import http_status_pb2, percent_pb2, token_bucket_pb2
from google.protobuf import duration_pb2, wrappers_pb2

from plait.api.common import StringMatch
from plait.api.ratelimit import Limit, RateLimit, RateLimitMatch
from plait.model.proxy import Proxy, ProxyKind
from plait.model.registry import service_hostname
from plait.model.snapshot import MeshSnapshot
from plait.translate.httpfilters import RATELIMIT_STAT_PREFIX

DESCRIPTOR_KEY = "plait_ratelimit"
METADATA_NAMESPACE = "plait.ratelimit"
METADATA_FIELD = "limit"
LIMITED_HEADER = "x-local-rate-limit"
_PLACEHOLDER_MS = 1000


def selects(snapshot: MeshSnapshot, rate_limit: RateLimit, proxy: Proxy) -> bool:
    """Whether `rate_limit` applies to the inbound side of `proxy` (a sidecar).

    `selector` matches the proxy's labels; `targetRef` picks the workloads the Service
    selects; neither selects every workload in the RateLimit's namespace.
    """
    if proxy.kind != ProxyKind.SIDECAR or proxy.namespace != rate_limit.metadata.namespace:
        return False
    spec = rate_limit.spec
    if spec.selector is not None:
        return proxy.labels.matches(spec.selector.match_labels)
    if spec.target_ref is not None:
        hostname = service_hostname(spec.target_ref.name, rate_limit.metadata.namespace)
        service = snapshot.service(hostname)
        return bool(service and service.selector and proxy.labels.matches(service.selector))
    return True


def limits_for(snapshot: MeshSnapshot, proxy: Proxy) -> tuple[RateLimit, ...]:
    """The RateLimits that select `proxy`, in snapshot order (namespace, name)."""
    found = snapshot.policies.rate_limit.candidates((proxy.namespace,))
    return tuple(i.resource for i in found if selects(snapshot, i.resource, proxy))


@dataclass(frozen=True)
class LimitedRoute:
    """One Envoy route ahead of the catch-all: a match of a limit and the limit's bucket
    (route metadata naming it)."""

    name: str
    match: rc.RouteMatch
    metadata: base_pb2.Metadata


@dataclass(frozen=True)
class InboundLimits:
    """What the inbound route table needs: the virtual host's filter config, the routes of
    matched limits (in order) and whether the catch-all route is limited too."""

    config: lrl.LocalRateLimit
    routes: tuple[LimitedRoute, ...]
    catch_all_limited: bool


def inbound_limits(rate_limits: Sequence[RateLimit]) -> InboundLimits | None:
    """The Envoy side of the RateLimits selecting one proxy; None when there are none."""
    if not rate_limits:
        return None
    matched: list[tuple[str, Limit]] = []
    service_wide: Limit | None = None
    for rl in rate_limits:
        for i, limit in enumerate(rl.spec.limits):
            if limit.match is not None:
                matched.append((_limit_key(rl, i, limit), limit))
            elif service_wide is None:
                service_wide = limit
    config = lrl.LocalRateLimit(
        stat_prefix=RATELIMIT_STAT_PREFIX,
        status=http_status_pb2.HttpStatus(code=rate_limits[0].spec.status_code),
        token_bucket=_bucket(service_wide) if service_wide else _placeholder_bucket(),
        filter_enabled=_always("local_rate_limit_enabled"),
        filter_enforced=_always("local_rate_limit_enforced"),
        response_headers_to_add=[
            base_pb2.HeaderValueOption(
                header=base_pb2.HeaderValue(key=LIMITED_HEADER, value="true"),
                append_action=base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD,
            )
        ],
        descriptors=[
            ratelimit_pb2.LocalRateLimitDescriptor(
                entries=[ratelimit_pb2.RateLimitDescriptor.Entry(key=DESCRIPTOR_KEY, value=key)],
                token_bucket=_bucket(limit),
            )
            for key, limit in matched
        ],
        enable_x_ratelimit_headers=ratelimit_pb2.DRAFT_VERSION_03,
        always_consume_default_token_bucket=wrappers_pb2.BoolValue(value=False),
        rate_limits=[_descriptor_from_route()],
    )
    routes = tuple(
        LimitedRoute(name=f"{key}/match[{j}]", match=route_match(m), metadata=_route_tag(key))
        for key, limit in matched
        for j, m in enumerate(limit.match or ())
    )
    return InboundLimits(config, routes, catch_all_limited=service_wide is not None)


def _limit_key(rl: RateLimit, index: int, limit: Limit) -> str:
    """The bucket's descriptor value, also the prefix of its route names."""
    meta = rl.metadata
    return f"{meta.namespace}/{meta.name}/{limit.name or f'limits[{index}]'}"


def _bucket(limit: Limit) -> token_bucket_pb2.TokenBucket:
    seconds, millis = divmod(limit.interval_ms, 1000)
    return token_bucket_pb2.TokenBucket(
        max_tokens=limit.max_tokens,
        tokens_per_fill=wrappers_pb2.UInt32Value(value=limit.requests),
        fill_interval=duration_pb2.Duration(seconds=seconds, nanos=millis * 1_000_000),
    )


def _placeholder_bucket() -> token_bucket_pb2.TokenBucket:
    """Envoy requires a default bucket in a per-route config; with no service-wide limit
    it is never consumed (every route names a descriptor or disables the filter)."""
    return token_bucket_pb2.TokenBucket(
        max_tokens=1,
        tokens_per_fill=wrappers_pb2.UInt32Value(value=1),
        fill_interval=duration_pb2.Duration(seconds=_PLACEHOLDER_MS // 1000),
    )


def _always(runtime_key: str) -> base_pb2.RuntimeFractionalPercent:
    return base_pb2.RuntimeFractionalPercent(
        runtime_key=runtime_key,
        default_value=percent_pb2.FractionalPercent(
            numerator=100, denominator=percent_pb2.FractionalPercent.HUNDRED
        ),
    )


def _route_tag(key: str) -> base_pb2.Metadata:
    out = base_pb2.Metadata()
    out.filter_metadata[METADATA_NAMESPACE].update({METADATA_FIELD: key})
    return out


def _descriptor_from_route() -> rc.RateLimit:
    """`plait_ratelimit: KEY` from the matched route's metadata; none for other routes."""
    meta = rc.RateLimit.Action.MetaData(
        descriptor_key=DESCRIPTOR_KEY,
        metadata_key=metadata_pb2.MetadataKey(
            key=METADATA_NAMESPACE,
            path=[metadata_pb2.MetadataKey.PathSegment(key=METADATA_FIELD)],
        ),
        source=rc.RateLimit.Action.MetaData.ROUTE_ENTRY,
        skip_if_absent=True,
    )
    return rc.RateLimit(actions=[rc.RateLimit.Action(metadata=meta)])


def _string_matcher(m: StringMatch) -> string_pb2.StringMatcher:
    if m.exact is not None:
        return string_pb2.StringMatcher(exact=m.exact)
    if m.prefix is not None:
        return string_pb2.StringMatcher(prefix=m.prefix)
    return string_pb2.StringMatcher(safe_regex=regex_pb2.RegexMatcher(regex=m.regex or ""))


def route_match(match: RateLimitMatch) -> rc.RouteMatch:
    """`uri` as the route's path match (as a VirtualService's), `method` and `headers` as
    header matches; all of them must hold."""
    out = rc.RouteMatch(prefix="/")
    uri = match.uri
    if uri is not None and uri.exact is not None:
        out.path = uri.exact
    elif uri is not None and uri.prefix:
        out.prefix = uri.prefix
    elif uri is not None and uri.regex is not None:
        out.safe_regex.CopyFrom(regex_pb2.RegexMatcher(regex=uri.regex))
    headers = sorted(match.headers.items())
    if match.method is not None:
        headers.append((":method", match.method))
    out.headers.extend(_header(name, m) for name, m in headers)
    return out


def _header(name: str, m: StringMatch) -> rc.HeaderMatcher:
    if m.prefix == "":  # Envoy rejects an empty prefix; it means "present" (as in Istio)
        return rc.HeaderMatcher(name=name.lower(), present_match=True)
    return rc.HeaderMatcher(name=name.lower(), string_match=_string_matcher(m))


def disabled() -> rc.FilterConfig:
    """A per-route override that switches the local rate limit filter off."""
    return rc.FilterConfig(disabled=True)
