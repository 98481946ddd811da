"""Istio percentages as Envoy fractions.

Istio's `Percent.value` is a double (0-100); like Istio, plait keeps four decimals by
counting in millionths. The deprecated integer percentages (`fault.delay.percent`,
`mirrorPercent`) count in hundredths.
"""

from __future__ import annotations

from envoy.config.core.v3 import base_pb2
from envoy.type.v3 import percent_pb2

from plait.api.common import Percent

FRACTION = percent_pb2.FractionalPercent


def of_percent(p: Percent) -> percent_pb2.FractionalPercent:
    """`percentage: {value: 12.5}` → 125000 per million."""
    return FRACTION(numerator=round(p.value * 10_000), denominator=FRACTION.MILLION)


def of_int(p: int) -> percent_pb2.FractionalPercent:
    """A deprecated integer percentage → n per hundred."""
    return FRACTION(numerator=p, denominator=FRACTION.HUNDRED)


def runtime(fraction: percent_pb2.FractionalPercent) -> base_pb2.RuntimeFractionalPercent:
    return base_pb2.RuntimeFractionalPercent(default_value=fraction)
