"""Timeouts and retries of a route (Istio's setTimeout and retry.ConvertPolicy).

- No `retries`: Istio's default policy (2 retries on connection failures, refused streams,
  gRPC unavailable/cancelled and 503, preferring hosts not tried yet).
- `retries.attempts` 0 or unset: no retries at all.
- Otherwise the default policy with the user's fields: `retryOn` is passed to Envoy,
  whose route `retry_on` takes both the HTTP conditions (5xx, gateway-error, reset,
  connect-failure, refused-stream, retriable-4xx, ...) and the gRPC ones (cancelled,
  deadline-exceeded, internal, resource-exhausted, unavailable); numbers become
  `retriable_status_codes` (adding `retriable-status-codes`).
- No `timeout`: none (0), as Istio; a gRPC caller's `grpc-timeout` header is honoured up
  to the route timeout (no cap without one).

plait extension: when the rule sets no `retries` / `timeout`, the destination's
DestinationRule `trafficPolicy.retryPolicy` / `trafficPolicy.timeout.http` apply.
"""

from __future__ import annotations

from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.extensions.retry.host.previous_hosts.v3 import previous_hosts_pb2
from envoy.extensions.retry.priority.previous_priorities.v3 import previous_priorities_config_pb2
from google.protobuf import duration_pb2, wrappers_pb2

from plait.api import Duration
from plait.api.destinationrule import TrafficPolicy
from plait.api.virtualservice import HTTPRetry, HTTPRoute

NO_TIMEOUT = duration_pb2.Duration(seconds=0)
DEFAULT_RETRY_ON = "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"
PREVIOUS_HOSTS = "envoy.retry_host_predicates.previous_hosts"
PREVIOUS_PRIORITIES = "envoy.retry_priorities.previous_priorities"


def duration(value: Duration) -> duration_pb2.Duration:
    seconds, nanos = value.seconds_nanos()
    return duration_pb2.Duration(seconds=seconds, nanos=nanos)


def default_retry_policy() -> rc.RetryPolicy:
    """Istio's retry policy when a route sets none: 2 attempts on connection-level failures."""
    policy = rc.RetryPolicy(
        retry_on=DEFAULT_RETRY_ON,
        num_retries=wrappers_pb2.UInt32Value(value=2),
        retriable_status_codes=[503],
        host_selection_retry_max_attempts=5,
    )
    pred = policy.retry_host_predicate.add(name=PREVIOUS_HOSTS)
    pred.typed_config.Pack(previous_hosts_pb2.PreviousHostsPredicate())
    return policy


def _parse_retry_on(value: str) -> tuple[str, list[int]]:
    conditions: list[str] = []
    codes: list[int] = []
    for part in (p.strip() for p in value.split(",")):
        if part.isdigit():
            codes.append(int(part))
        elif part:
            conditions.append(part)
    if codes and "retriable-status-codes" not in conditions:
        conditions.append("retriable-status-codes")
    return ",".join(conditions), codes


def retry_policy(retries: HTTPRetry | None) -> rc.RetryPolicy | None:
    """The Envoy policy for an Istio HTTPRetry (None: no retries)."""
    if retries is None:
        return default_retry_policy()
    if not retries.attempts:
        return None
    policy = default_retry_policy()
    policy.num_retries.value = retries.attempts
    if retries.retry_on:
        policy.retry_on, codes = _parse_retry_on(retries.retry_on)
        del policy.retriable_status_codes[:]
        policy.retriable_status_codes.extend(codes)
    if retries.per_try_timeout:
        policy.per_try_timeout.CopyFrom(duration(retries.per_try_timeout))
    if retries.retry_ignore_previous_hosts is False:
        del policy.retry_host_predicate[:]
    if retries.retry_remote_localities:
        priority = policy.retry_priority
        priority.name = PREVIOUS_PRIORITIES
        priority.typed_config.Pack(
            previous_priorities_config_pb2.PreviousPrioritiesConfig(update_frequency=2)
        )
    if retries.backoff:
        policy.retry_back_off.base_interval.CopyFrom(duration(retries.backoff))
    return policy


def apply(action: rc.RouteAction, rule: HTTPRoute, policy: TrafficPolicy | None) -> None:
    """Timeout and retry policy of a forwarding rule; `policy` is the destination's
    DestinationRule policy, for the plait extension fields."""
    timeout = rule.timeout
    if timeout is None and policy is not None and policy.timeout is not None:
        timeout = policy.timeout.http
    action.timeout.CopyFrom(duration(timeout) if timeout else NO_TIMEOUT)
    # Istio's choice: the deprecated max_grpc_timeout, because setting max_stream_duration
    # switches Envoy to stream-duration timeouts and the route timeout would be ignored.
    action.max_grpc_timeout.CopyFrom(action.timeout)
    retries = rule.retries
    if retries is None and policy is not None:
        retries = policy.retry_policy
    retry = retry_policy(retries)
    if retry is not None:
        action.retry_policy.CopyFrom(retry)
