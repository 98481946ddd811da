"""The control plane's Prometheus metrics, served as `GET /metrics` on the status port.

Two kinds of source, one dedicated registry (never prometheus_client's global one):

* timings the xDS server measures as they happen (push time, convergence time, response
  sizes) reach `XdsHistograms`, the server's `XdsObserver`, and go into histograms;
* everything else is read when Prometheus scrapes, by `MeshCollector`, from what the
  control plane keeps anyway: the xDS server's `XdsCounters` and proxy statuses, the
  snapshot's config messages, the CA's counters and certificates (no hooks in the CA).

Concurrency: the status server scrapes on the control plane's event loop, the loop that
changes all of these, so a scrape reads one consistent state without locks.

Names: each metric has a `plait_` name; where istiod exports one with the same meaning
(istio/istio pilot/pkg/xds/monitoring.go, pkg/xds/monitoring.go,
security/pkg/server/ca/monitoring.go) it is exported under Istio's name too, with Istio's
labels and buckets, so dashboards made for Istio work. istiod exports its counters without
the `_total` suffix, which prometheus_client always adds to a counter; those Istio-named
counters are therefore exposed untyped, under Istio's exact sample names (PromQL's `rate`
and `increase` do not look at the type).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from typing import Protocol

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    UnknownMetricFamily,
)
from prometheus_client.exposition import choose_encoder

from plait.ca import CertInfo
from plait.controlplane.security import MeshSecurity
from plait.errors import Severity
from plait.model.proxy import ProxyKind
from plait.model.snapshot import MeshSnapshot
from plait.translate.typeurls import PUSH_ORDER, SHORT_NAMES
from plait.xds import ProxyStatus, SyncState, XdsCounters

XDS_TYPES = tuple(SHORT_NAMES[t] for t in PUSH_ORDER)  # cds, eds, lds, rds

# Istio's buckets (pilot/pkg/xds/monitoring.go), for the pilot_* histograms
ISTIO_PUSH_TIME_BUCKETS = (0.01, 0.1, 1, 3, 5, 10, 20, 30)
ISTIO_CONVERGENCE_BUCKETS = (0.1, 0.5, 1, 3, 5, 10, 20, 30)
ISTIO_SIZE_BUCKETS = (1, 10_000, 1_000_000, 4_000_000, 10_000_000, 40_000_000)
# plait converges in milliseconds on one machine: finer buckets for the plait_* ones
TIME_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
SIZE_BUCKETS = (1_000, 10_000, 100_000, 1_000_000, 4_000_000, 10_000_000, 40_000_000)

NOT_A_CSR = "http_"  # CA refusals of requests that were not a CSR (404, 405, ...)


class XdsHistograms:
    """The xDS server's `XdsObserver`: timings and sizes into histograms."""

    def __init__(self, registry: CollectorRegistry) -> None:
        def histogram(name: str, doc: str, buckets: Sequence[float], *labels: str) -> Histogram:
            return Histogram(name, doc, labels, registry=registry, buckets=buckets)

        push = "Seconds from a new snapshot generation to a response of it being written."
        self._push_time = (
            histogram("plait_xds_push_time_seconds", push, TIME_BUCKETS, "type"),
            histogram("pilot_xds_push_time", push, ISTIO_PUSH_TIME_BUCKETS, "type"),
        )
        converge = "Seconds from a new snapshot generation to the proxy's ACK of all of it."
        self._convergence = (
            histogram("plait_xds_convergence_time_seconds", converge, TIME_BUCKETS),
            histogram("pilot_proxy_convergence_time", converge, ISTIO_CONVERGENCE_BUCKETS),
        )
        size = "Size in bytes of the xDS responses sent."
        self._size = (
            histogram("plait_xds_config_size_bytes", size, SIZE_BUCKETS, "type"),
            histogram("pilot_xds_config_size_bytes", size, ISTIO_SIZE_BUCKETS, "type"),
        )

    def pushed(self, type_name: str, size: int, seconds: float | None) -> None:
        for h in self._size:
            h.labels(type_name).observe(size)
        if seconds is not None:
            for h in self._push_time:
                h.labels(type_name).observe(seconds)

    def converged(self, seconds: float) -> None:
        for h in self._convergence:
            h.observe(seconds)


class XdsView(Protocol):
    """What the collector reads from the xDS server (`AdsServer` is one)."""

    @property
    def counters(self) -> XdsCounters: ...

    def statuses(self) -> list[ProxyStatus]: ...


class StateView(Protocol):
    """What the collector reads from the mesh state (`MeshState` is one)."""

    @property
    def snapshot(self) -> MeshSnapshot: ...

    @property
    def translation_errors(self) -> dict[str, str]: ...


Labelled = Mapping[tuple[str, ...], float]
Samples = float | Labelled
"""One value (a metric without labels), or values by their label values."""


def _family(
    family: CounterMetricFamily | GaugeMetricFamily | UnknownMetricFamily, samples: Samples
) -> Metric:
    items = samples.items() if isinstance(samples, Mapping) else [((), samples)]
    for label_values, value in items:
        family.add_metric(list(label_values), value)
    return family


def counter(name: str, doc: str, samples: Samples, labels: Sequence[str] = ()) -> Metric:
    return _family(CounterMetricFamily(name, doc, labels=labels), samples)


def istio_counter(name: str, doc: str, samples: Samples, labels: Sequence[str] = ()) -> Metric:
    """An istiod counter under its exact name (no `_total`; see the module docstring)."""
    return _family(UnknownMetricFamily(name, doc, labels=labels), samples)


def gauge(name: str, doc: str, samples: Samples, labels: Sequence[str] = ()) -> Metric:
    return _family(GaugeMetricFamily(name, doc, labels=labels), samples)


def _by_label(counts: Mapping[str, int]) -> Labelled:
    return {(k,): v for k, v in sorted(counts.items())}


def xds_metrics(counters: XdsCounters, statuses: Sequence[ProxyStatus]) -> Iterator[Metric]:
    """Connected proxies, pushes, NACKs, requests and refused streams."""
    connected = Counter(s.proxy.kind.value for s in statuses if s.connected)
    kinds: Labelled = {(k.value,): connected[k.value] for k in ProxyKind}
    doc = "Proxies connected to the control plane over xDS."
    yield gauge("plait_xds_connected_proxies", doc, kinds, ["kind"])
    yield gauge("pilot_xds", doc, connected.total())
    doc = "xDS responses sent, by type and by what caused them."
    by_reason: Labelled = dict(sorted(counters.pushes_by_reason.items()))
    yield counter("plait_xds_pushes", doc, by_reason, ["type", "reason"])
    doc = "xDS responses sent, by type."
    yield istio_counter("pilot_xds_pushes", doc, _by_label(counters.pushes), ["type"])
    doc = "xDS responses proxies rejected (NACK), by type."
    yield counter("plait_xds_nacks", doc, _by_label(counters.nacks), ["type"])
    yield istio_counter("pilot_total_xds_rejects", doc, _by_label(counters.nacks), ["type"])
    yield from _standing_nacks([s for s in statuses if s.connected])
    yield counter("plait_xds_acks", "xDS responses proxies accepted (ACK).", counters.acks)
    doc = "xDS requests whose nonce was not the latest sent (neither ACK nor NACK)."
    yield counter("plait_xds_stale_requests", doc, counters.stale_requests)
    yield istio_counter("pilot_xds_expired_nonce", doc, counters.stale_requests)
    yield counter("plait_xds_streams_opened", "xDS streams admitted.", counters.streams_opened)
    doc = "xDS streams refused: bad_node (unusable node metadata), permission_denied (identity)."
    rejected = _by_label(counters.rejected_by_reason)
    yield counter("plait_xds_rejected_streams", doc, rejected, ["reason"])


def _standing_nacks(connected: Sequence[ProxyStatus]) -> Iterator[Metric]:
    """Connected proxies whose latest response (of a type) stands rejected."""
    with_nack = sum(1 for s in connected if s.nack is not None)
    doc = "Connected proxies with a NACK in force."
    yield gauge("plait_xds_proxies_with_nack", doc, with_nack)
    for t in XDS_TYPES:
        nacked = sorted(
            s.proxy.id for s in connected if t in s.types and s.types[t].state is SyncState.NACK
        )
        doc = f"1 for each connected proxy whose latest {t.upper()} response stands rejected."
        yield gauge(f"pilot_xds_{t}_reject", doc, {(n,): 1 for n in nacked}, ["node"])


def config_metrics(state: StateView) -> Iterator[Metric]:
    """Config errors and warnings in force, and proxies whose translation failed."""
    severities = Counter(m.severity for m in state.snapshot.messages)
    doc = "Configuration errors in force (the resources they are in are not applied)."
    yield gauge("plait_config_errors", doc, severities[Severity.ERROR])
    doc = "Configuration warnings in force."
    yield gauge("plait_config_warnings", doc, severities[Severity.WARNING])
    doc = "Proxies whose configuration could not be translated (they keep their last one)."
    yield gauge("plait_config_translation_failures", doc, len(state.translation_errors))


def ca_metrics(security: MeshSecurity) -> Iterator[Metric]:
    """Certificates issued, refusals, and the expiry of every CA certificate."""
    issued, refused = security.server.issued, security.server.refused
    doc = "Workload certificates the CA issued."
    yield counter("plait_ca_certificates_issued", doc, issued)
    yield istio_counter("citadel_server_success_cert_issuance_count", doc, issued)
    doc = "Requests the CA refused, by reason (unauthenticated, forbidden, bad_csr, ...)."
    yield counter("plait_ca_refusals", doc, _by_label(refused), ["reason"])
    csrs = issued + sum(n for r, n in refused.items() if not r.startswith(NOT_A_CSR))
    yield istio_counter("citadel_server_csr_count", "CSRs the CA received.", csrs)
    doc = "CSRs refused for a missing or invalid token."
    yield istio_counter(
        "citadel_server_authentication_failure_count", doc, refused["unauthenticated"]
    )
    doc = "CSRs that could not be parsed."
    yield istio_counter("citadel_server_csr_parsing_err_count", doc, refused["bad_csr"])
    yield from _expiry_metrics(security.ca.describe().certs)
    doc = "Expiry (seconds since the epoch) of the control plane's serving certificate."
    expiry = security.serving.current().not_after.timestamp()
    yield gauge("plait_ca_serving_certificate_expiry_timestamp_seconds", doc, expiry)


def _expiry_metrics(certs: Sequence[CertInfo]) -> Iterator[Metric]:
    doc = "Expiry (seconds since the epoch) of each root and intermediate CA certificate."
    expiry: Labelled = {(c.role, c.subject, c.fingerprint): c.not_after.timestamp() for c in certs}
    labels = ["role", "subject", "fingerprint"]
    yield gauge("plait_ca_certificate_expiry_timestamp_seconds", doc, expiry, labels)
    roots = [c.not_after.timestamp() for c in certs if c.role == "root"]
    chain = [c.not_after.timestamp() for c in certs if c.role in ("root", "intermediate")]
    if roots:
        doc = "Expiry (seconds since the epoch) of the CA's root certificate."
        yield gauge("citadel_server_root_cert_expiry_timestamp", doc, min(roots))
    if chain:
        doc = "Expiry (seconds since the epoch) of the first CA chain certificate to expire."
        yield gauge("citadel_server_cert_chain_expiry_timestamp", doc, min(chain))


class MeshCollector:
    """A prometheus_client collector: reads the control plane's state on each scrape."""

    def __init__(self, xds: XdsView, state: StateView, security: MeshSecurity | None) -> None:
        self.xds, self.state, self.security = xds, state, security

    def collect(self) -> Iterator[Metric]:
        yield from xds_metrics(self.xds.counters, self.xds.statuses())
        yield from config_metrics(self.state)
        if self.security is not None:
            yield from ca_metrics(self.security)


class ControlPlaneMetrics:
    """The registry behind `/metrics`: give `xds` to the AdsServer as its observer, then
    `watch` the server, the state and the CA once they exist."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.xds = XdsHistograms(self.registry)

    def watch(self, xds: XdsView, state: StateView, security: MeshSecurity | None) -> None:
        self.registry.register(MeshCollector(xds, state, security))

    def exposition(self, accept: str | None = None) -> tuple[bytes, str]:
        """The scrape body and its content type (Prometheus text, or OpenMetrics when the
        `Accept` header asks for it)."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type
