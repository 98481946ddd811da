"""Fault injection: an HTTPFault per route, for the idle fault filter every HCM carries.

Istio's TranslateFault: a fixed delay and/or an abort (HTTP status or gRPC status), each
for its percentage of requests; an unset percentage injects nothing (Envoy's default for
an empty fraction). `exponentialDelay` and `http2Error` are not supported by Istio either
and are left out.
"""

from __future__ import annotations

from envoy.extensions.filters.common.fault.v3 import fault_pb2 as common_fault_pb2
from envoy.extensions.filters.http.fault.v3 import fault_pb2

from plait.api.virtualservice import GRPC_CODES, FaultAbort, FaultDelay, HTTPFaultInjection
from plait.translate import percent
from plait.translate.resilience import duration

GRPC_STATUS = {name: code for code, name in enumerate(GRPC_CODES)}
"""gRPC status names (google.rpc.Code) → numbers, as Istio's `grpcStatus` takes names."""


def grpc_status(value: str) -> int | None:
    """`UNAVAILABLE` (any case) or `14` → 14; None when it names no gRPC status."""
    if value.isdigit():
        return int(value) if int(value) <= 16 else None
    return GRPC_STATUS.get(value.upper())


def _delay(delay: FaultDelay) -> common_fault_pb2.FaultDelay | None:
    if delay.fixed_delay is None:
        return None  # exponential delays: not supported (Istio neither)
    out = common_fault_pb2.FaultDelay(fixed_delay=duration(delay.fixed_delay))
    if delay.percentage is not None:
        out.percentage.CopyFrom(percent.of_percent(delay.percentage))
    else:
        out.percentage.CopyFrom(percent.of_int(delay.percent or 0))
    return out


def _abort(abort: FaultAbort) -> fault_pb2.FaultAbort | None:
    out = fault_pb2.FaultAbort()
    grpc = grpc_status(abort.grpc_status) if abort.grpc_status is not None else None
    if abort.http_status is not None:
        out.http_status = abort.http_status
    elif grpc is not None:
        out.grpc_status = grpc
    else:
        return None  # http2Error: not supported (Istio neither)
    if abort.percentage is not None:
        out.percentage.CopyFrom(percent.of_percent(abort.percentage))
    return out


def http_fault(fault: HTTPFaultInjection) -> fault_pb2.HTTPFault | None:
    """The per-route fault config, or None when nothing in it can be injected."""
    delay = _delay(fault.delay) if fault.delay is not None else None
    abort = _abort(fault.abort) if fault.abort is not None else None
    if delay is None and abort is None:
        return None
    out = fault_pb2.HTTPFault()
    if delay is not None:
        out.delay.CopyFrom(delay)
    if abort is not None:
        out.abort.CopyFrom(abort)
    return out
