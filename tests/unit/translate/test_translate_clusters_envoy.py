"""Each cluster gets its effective DestinationRule policy (port-level and subset overlays),
and real Envoy (`--mode validate`) accepts clusters using every applied policy field."""

from __future__ import annotations

from pathlib import Path

from envoy.config.cluster.v3 import cluster_pb2
from test_translate_envoy_validate import assert_envoy_accepts
from translate_kit import clusters, instance, sidecar, snapshot

from plait.translate.proxy import Translator
from testpki import self_signed

C = cluster_pb2.Cluster


def service(name: str, *ports: int) -> str:
    listed = ", ".join(f"{{name: http-{p}, port: {p}}}" for p in ports)
    return f"""apiVersion: v1
kind: Service
metadata: {{name: {name}}}
spec:
  selector: {{app: {name}}}
  ports: [{listed}]
---
"""


MESH = (
    service("reviews", 8080, 9080)
    + service("ratings", 8080)
    + service("details", 8080)
    + service("cart", 8080)
    + """apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  trafficPolicy:
    loadBalancer: {simple: LEAST_REQUEST, warmup: {duration: 30s, minimumPercent: 5, aggression: 2}}
    connectionPool:
      tcp:
        maxConnections: 100
        connectTimeout: 2s
        tcpKeepalive: {probes: 3, time: 60s, interval: 10s}
        maxConnectionDuration: 10m
        idleTimeout: 1h
      http:
        http1MaxPendingRequests: 10
        http2MaxRequests: 1000
        maxRequestsPerConnection: 100
        maxRetries: 3
        idleTimeout: 5m
        h2UpgradePolicy: UPGRADE
        maxConcurrentStreams: 64
        http2KeepAlive: {interval: 30s, timeout: 5s}
    outlierDetection:
      consecutive5xxErrors: 5
      consecutiveGatewayErrors: 3
      consecutiveLocalOriginFailures: 2
      splitExternalLocalOriginErrors: true
      interval: 10s
      baseEjectionTime: 30s
      maxEjectionPercent: 50
      minHealthPercent: 25
    retryBudget: {percent: 20, minRetryConcurrency: 5}
    portLevelSettings:
    - port: {number: 9080}
      loadBalancer: {simple: RANDOM}
      connectionPool: {tcp: {maxConnections: 7}}
  subsets:
  - name: v1
    labels: {version: v1}
    trafficPolicy:
      loadBalancer: {consistentHash: {httpCookie: {name: user, path: /, ttl: 0s}}}
  - name: v2
    labels: {version: v2}
    trafficPolicy:
      loadBalancer: {consistentHash: {httpHeaderName: x-user, maglev: {tableSize: 65537}}}
      portLevelSettings:
      - port: {number: 9080}
        outlierDetection: {consecutive5xxErrors: 0}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings}
spec:
  host: ratings
  trafficPolicy:
    loadBalancer: {consistentHash: {useSourceIp: true, ringHash: {minimumRingSize: 4096}}}
    connectionPool: {http: {useClientProtocol: true}}
    timeout: {connectTimeout: 500ms}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: details}
spec:
  host: details
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN, warmupDurationSecs: 10s}
    connectionPool: {http: {h2UpgradePolicy: DO_NOT_UPGRADE}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: cart}
spec:
  host: cart
  trafficPolicy:
    loadBalancer: {consistentHash: {httpQueryParameterName: session}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: bank}
spec:
  hosts: [bank.example.com]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: 8443, name: http, protocol: HTTP}]
  endpoints: [{address: 127.0.0.1, ports: {http: 9443}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: bank}
spec:
  host: bank.example.com
  trafficPolicy:
    tls:
      mode: SIMPLE
      caCertificates: CERT_FILE
      sni: bank.example.com
      subjectAltNames: [bank.example.com]
    portLevelSettings:
    - port: {number: 8443}
      connectionPool: {tcp: {connectTimeout: 1s}}
  subsets:
  - name: auto
    labels: {}
    trafficPolicy: {tls: {mode: SIMPLE}}
  - name: mutual
    labels: {}
    trafficPolicy:
      tls:
        mode: MUTUAL
        clientCertificate: CERT_FILE
        privateKey: KEY_FILE
        insecureSkipVerify: true
"""
)


def outbound(host: str, port: int, subset: str = "") -> str:
    full = host if "." in host else f"{host}.default.svc.cluster.local"
    return f"outbound|{port}|{subset}|{full}"


def mesh_clusters() -> dict[str, cluster_pb2.Cluster]:
    snap = snapshot(MESH, [instance("reviews-v1-0", 20001, app="reviews", version="v1")])
    return clusters(Translator(snap).config_for(sidecar("frontend-0")))


def test_each_cluster_gets_its_effective_policy() -> None:
    found = mesh_clusters()
    main = found[outbound("reviews", 8080)]
    assert main.lb_policy == C.LEAST_REQUEST
    assert main.circuit_breakers.thresholds[0].max_connections.value == 100
    assert main.outlier_detection.consecutive_5xx.value == 5
    # portLevelSettings replace whole fields for that port only
    port = found[outbound("reviews", 9080)]
    assert port.lb_policy == C.RANDOM
    assert port.circuit_breakers.thresholds[0].max_connections.value == 7
    assert port.circuit_breakers.thresholds[0].max_pending_requests.value == 2**32 - 1
    assert port.outlier_detection.consecutive_5xx.value == 5  # not overridden: inherited
    # subsets overlay the port's policy, and their own port-level entries overlay that
    v1 = found[outbound("reviews", 8080, "v1")]
    assert v1.lb_policy == C.RING_HASH
    assert v1.circuit_breakers.thresholds[0].max_connections.value == 100
    v2_9080 = found[outbound("reviews", 9080, "v2")]
    assert v2_9080.lb_policy == C.MAGLEV
    assert v2_9080.circuit_breakers.thresholds[0].max_connections.value == 7
    assert v2_9080.outlier_detection.enforcing_consecutive_5xx.value == 0
    assert found[outbound("ratings", 8080)].connect_timeout.nanos == 500_000_000
    assert found[outbound("bank.example.com", 8443)].connect_timeout.seconds == 1
    assert found[outbound("bank.example.com", 8443, "auto")].HasField("transport_socket")
    assert not found[outbound("cart", 8080)].HasField("outlier_detection")


def test_envoy_accepts_clusters_using_every_policy_field(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path, "bank.example.com")
    snap = snapshot(
        MESH.replace("CERT_FILE", str(cert)).replace("KEY_FILE", str(key)),
        [
            instance("reviews-v1-0", 20001, app="reviews", version="v1"),
            instance("reviews-v2-0", 20002, app="reviews", version="v2"),
            instance("ratings-0", 20003, app="ratings"),
        ],
    )
    assert_envoy_accepts(tmp_path, Translator(snap).config_for(sidecar("frontend-0")))
