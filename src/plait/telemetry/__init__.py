"""Telemetry: Istio's standard metrics from the proxies' access logs.

`labels` (pure: one access-log record → Istio's label set), `istio` (the istio_request*
families of one proxy), `exporter` (I/O in `plait up`: one metrics endpoint per proxy,
Envoy's stats followed by the istio_* families).
"""
