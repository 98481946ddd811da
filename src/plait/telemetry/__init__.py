"""Telemetry: each proxy's metrics endpoint and `plait top`'s figures.

Envoy counts Istio's request metrics itself (`translate.metrics`). `istio` (pure: Envoy's
`/stats/prometheus` text → the same with the istio families under Istio's names and
labels), `exporter` (I/O: one metrics endpoint per proxy, rewriting at scrape time),
`top` (pure: golden metrics from two scrapes).
"""
