"""Outlier detection: DestinationRule `outlierDetection` → Envoy's passive health checking.

Mirrors istiod's applyOutlierDetection:

- success-rate ejection is switched off (`enforcing_success_rate: 0`), so only the
  consecutive-error detectors the user configures eject hosts;
- `consecutive5xxErrors` / `consecutiveGatewayErrors` set the threshold and enforce it at
  100% (0 disables the detector: threshold and enforcement both 0). Unset
  `consecutive5xxErrors` leaves Envoy's default (5, enforced), which is Istio's default;
- `consecutiveLocalOriginFailures` counts only with `splitExternalLocalOriginErrors`
  (connect failures, resets and timeouts kept apart from upstream 5xx);
- `minHealthPercent` becomes the cluster's healthy panic threshold; unset it is 0, so
  a few ejected replicas never put the cluster in panic mode (Envoy's default is 50%).

Consecutive-error ejection happens as soon as the threshold is hit; `interval` is how often
Envoy sweeps, readmitting hosts whose ejection (`baseEjectionTime` × times ejected) ended.
https://www.envoyproxy.io/docs/envoy/latest/intro/arch_overview/upstream/outlier
"""

from __future__ import annotations

from envoy.config.cluster.v3 import cluster_pb2, outlier_detection_pb2
from envoy.type.v3 import percent_pb2
from google.protobuf import wrappers_pb2

from plait.api.destinationrule import OutlierDetection
from plait.translate.pbtime import duration


def _u32(value: int) -> wrappers_pb2.UInt32Value:
    return wrappers_pb2.UInt32Value(value=value)


def apply_outlier_detection(cluster: cluster_pb2.Cluster, od: OutlierDetection | None) -> None:
    if od is None:
        return
    out = outlier_detection_pb2.OutlierDetection(enforcing_success_rate=_u32(0))
    if od.consecutive_5xx_errors is not None:
        v = od.consecutive_5xx_errors
        out.consecutive_5xx.CopyFrom(_u32(v))
        out.enforcing_consecutive_5xx.CopyFrom(_u32(100 if v > 0 else 0))
    if od.consecutive_gateway_errors is not None:
        v = od.consecutive_gateway_errors
        out.consecutive_gateway_failure.CopyFrom(_u32(v))
        out.enforcing_consecutive_gateway_failure.CopyFrom(_u32(100 if v > 0 else 0))
    if od.interval is not None:
        out.interval.CopyFrom(duration(od.interval))
    if od.base_ejection_time is not None:
        out.base_ejection_time.CopyFrom(duration(od.base_ejection_time))
    if od.max_ejection_percent:
        out.max_ejection_percent.CopyFrom(_u32(od.max_ejection_percent))
    if od.split_external_local_origin_errors:
        out.split_external_local_origin_errors = True
        if od.consecutive_local_origin_failures:
            out.consecutive_local_origin_failure.CopyFrom(
                _u32(od.consecutive_local_origin_failures)
            )
            out.enforcing_consecutive_local_origin_failure.CopyFrom(_u32(100))
        out.enforcing_local_origin_success_rate.CopyFrom(_u32(0))
    cluster.outlier_detection.CopyFrom(out)
    cluster.common_lb_config.healthy_panic_threshold.CopyFrom(
        percent_pb2.Percent(value=float(od.min_health_percent or 0))
    )
