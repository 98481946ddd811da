"""Warnings for DestinationRule policy: applied fields are silent, values plait applies
differently (PASSTHROUGH) and fields it does not apply are named."""

from __future__ import annotations

from plait.api import load_text
from plait.api.caveats import CAVEATS

DR = """apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: dr}
spec:
  host: reviews
"""

EVERY_APPLIED_FIELD = """  trafficPolicy:
    loadBalancer:
      consistentHash: {httpCookie: {name: c, path: /, ttl: 10s}, ringHash: {minimumRingSize: 8}}
      warmupDurationSecs: 10s
      warmup: {duration: 10s, minimumPercent: 1, aggression: 1}
    connectionPool:
      tcp: {maxConnections: 1, connectTimeout: 1s, tcpKeepalive: {probes: 1, time: 1s, interval: 1s},
            maxConnectionDuration: 1s, idleTimeout: 1s}
      http: {http1MaxPendingRequests: 1, http2MaxRequests: 1, maxRequestsPerConnection: 1,
             maxRetries: 1, idleTimeout: 1s, h2UpgradePolicy: UPGRADE, useClientProtocol: true,
             maxConcurrentStreams: 1, http2KeepAlive: {interval: 1s, timeout: 1s}}
    outlierDetection: {consecutive5xxErrors: 1, consecutiveGatewayErrors: 1,
                       consecutiveLocalOriginFailures: 1, splitExternalLocalOriginErrors: true,
                       interval: 1s, baseEjectionTime: 1s, maxEjectionPercent: 1, minHealthPercent: 1}
    tls: {mode: MUTUAL, sni: s, caCertificates: /ca, subjectAltNames: [a], insecureSkipVerify: false,
          caCrl: /crl, clientCertificate: /c, privateKey: /k}
    retryBudget: {percent: 1, minRetryConcurrency: 1}
    portLevelSettings:
    - port: {number: 80}
      loadBalancer: {simple: LEAST_CONN}
      connectionPool: {tcp: {maxConnections: 2}}
      outlierDetection: {interval: 2s}
      tls: {mode: SIMPLE}
  subsets:
  - name: v1
    labels: {version: v1}
    trafficPolicy:
      loadBalancer: {simple: RANDOM}
      retryBudget: {percent: 5}
      portLevelSettings: [{port: {number: 80}, tls: {mode: DISABLE}}]
"""


def warnings(text: str) -> list[tuple[str, str]]:
    result = load_text(text, "dr.yaml")
    assert not result.errors, result.errors
    return [(m.path, m.message) for m in result.warnings]


def test_every_applied_policy_field_loads_without_a_warning() -> None:
    assert warnings(DR + EVERY_APPLIED_FIELD) == []


def test_unapplied_policy_fields_are_still_named() -> None:
    text = (
        DR
        + """  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN, localityLbSetting: {enabled: true}}
    outlierDetection: {consecutiveErrors: 3, consecutive5xxErrors: 3}
    tls: {mode: MUTUAL, credentialName: secret}
    retryBudget: {percent: 10, budgetInterval: 1s}
"""
    )
    assert [path for path, _ in warnings(text)] == [
        "spec.trafficPolicy.loadBalancer.localityLbSetting",
        "spec.trafficPolicy.outlierDetection.consecutiveErrors",
        "spec.trafficPolicy.tls.credentialName",
        "spec.trafficPolicy.retryBudget.budgetInterval",
    ]


def test_passthrough_warns_wherever_it_appears_and_istio_mutual_is_applied() -> None:
    text = (
        DR
        + """  trafficPolicy:
    loadBalancer: {simple: PASSTHROUGH}
  subsets:
  - name: v1
    trafficPolicy:
      portLevelSettings: [{port: {number: 80}, tls: {mode: ISTIO_MUTUAL}}]
"""
    )
    found = warnings(text)
    assert [path for path, _ in found] == ["spec.trafficPolicy.loadBalancer.simple"]
    assert "ROUND_ROBIN" in found[0][1]


def test_other_values_of_the_same_fields_do_not_warn() -> None:
    text = DR + "  trafficPolicy: {loadBalancer: {simple: RANDOM}, tls: {mode: SIMPLE}}\n"
    assert warnings(text) == []
    assert ("loadBalancer.simple", "PASSTHROUGH") in CAVEATS["DestinationRule"]
