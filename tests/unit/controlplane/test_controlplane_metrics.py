"""The control plane's /metrics: names, labels and values after simulated events, parsed
with prometheus_client's own text parser (plait and Istio names side by side)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from plait.ca import TokenIssuer
from plait.controlplane.metrics import ControlPlaneMetrics
from plait.controlplane.security import MeshSecurity, SecurityOptions
from plait.controlplane.state import MeshState
from plait.errors import ConfigMessage, Severity
from plait.model.labels import Labels
from plait.model.proxy import Proxy, ProxyKind
from plait.model.snapshot import build_snapshot
from plait.translate.typeurls import CLUSTER, ENDPOINT, LISTENER
from plait.xds import ProxyStatus, PushReason, SyncState, TypeStatus, XdsCounters
from testpki import plugged_in

NOW = dt.datetime.now(dt.UTC)
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(metrics: ControlPlaneMetrics) -> tuple[dict[str, str], Samples]:
    """(type by family name, value by (sample name, sorted labels)) of one scrape."""
    body, content_type = metrics.exposition()
    assert content_type.startswith("text/plain; version=0.0.4")
    types: dict[str, str] = {}
    samples: Samples = {}
    for family in text_string_to_metric_families(body.decode()):
        types[family.name] = family.type
        for s in family.samples:
            samples[s.name, tuple(sorted(s.labels.items()))] = s.value
    return types, samples


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def proxy(name: str, kind: ProxyKind = ProxyKind.SIDECAR) -> Proxy:
    return Proxy(
        id=f"{kind.value}~{name}.default",
        kind=kind,
        workload=name,
        service_account=name,
        labels=Labels.of({"app": name}),
        inbound_port=15006,
        outbound_port=15001,
    )


def status(p: Proxy, *, connected: bool = True, nack: str | None = None) -> ProxyStatus:
    def t(state: SyncState) -> TypeStatus:
        return TypeStatus(state, "v2", "v2", "v1", NOW, nack if state is SyncState.NACK else None)

    cds = SyncState.NACK if nack else SyncState.SYNCED
    types = {"cds": t(cds), "eds": t(SyncState.SYNCED), "lds": t(SyncState.SYNCED)}
    return ProxyStatus(p, connected, NOW, None if connected else NOW, 3, types, nack, NOW)


@dataclass
class FakeXds:
    """Stands for the AdsServer: its counters and the statuses of its streams."""

    counters: XdsCounters = field(default_factory=XdsCounters)
    proxies: list[ProxyStatus] = field(default_factory=list)

    def statuses(self) -> list[ProxyStatus]:
        return self.proxies


def config_state(*messages: ConfigMessage) -> MeshState:
    return MeshState(build_snapshot((), (), 1, messages))


def test_xds_counters_and_statuses_under_plait_and_istio_names() -> None:
    xds = FakeXds()
    for _ in range(2):
        xds.counters.count_push(CLUSTER, PushReason.NEW_CONNECTION)
    xds.counters.count_push(CLUSTER, PushReason.CONFIG)
    xds.counters.count_push(ENDPOINT, PushReason.ENDPOINT)
    xds.counters.count_nack(LISTENER)
    xds.counters.count_nack(LISTENER)
    xds.counters.acks, xds.counters.stale_requests = 7, 2
    xds.counters.count_rejected("permission_denied")
    bad = proxy("reviews")
    xds.proxies = [
        status(bad, nack="cluster x: bad"),
        status(proxy("ratings")),
        status(proxy("gone"), connected=False, nack="old"),
        status(proxy("istio-ingressgateway", ProxyKind.GATEWAY)),
    ]
    metrics = ControlPlaneMetrics()
    metrics.watch(xds, config_state(), None)

    types, samples = scrape(metrics)

    assert value(samples, "plait_xds_connected_proxies", kind="sidecar") == 2
    assert value(samples, "plait_xds_connected_proxies", kind="gateway") == 1
    assert value(samples, "pilot_xds") == 3
    assert value(samples, "plait_xds_pushes_total", type="cds", reason="new_connection") == 2
    assert value(samples, "plait_xds_pushes_total", type="cds", reason="config") == 1
    assert value(samples, "plait_xds_pushes_total", type="eds", reason="endpoint") == 1
    assert types["plait_xds_pushes"] == "counter"
    # Istio's names, exactly as istiod exposes them (no _total)
    assert value(samples, "pilot_xds_pushes", type="cds") == 3
    assert value(samples, "pilot_xds_pushes", type="eds") == 1
    assert value(samples, "plait_xds_nacks_total", type="lds") == 2
    assert value(samples, "pilot_total_xds_rejects", type="lds") == 2
    # NACKs in force: only connected proxies count
    assert value(samples, "plait_xds_proxies_with_nack") == 1
    assert value(samples, "pilot_xds_cds_reject", node=bad.id) == 1
    assert not [k for k in samples if k[0] == "pilot_xds_lds_reject"]
    assert value(samples, "plait_xds_acks_total") == 7
    assert value(samples, "plait_xds_stale_requests_total") == 2
    assert value(samples, "pilot_xds_expired_nonce") == 2
    assert value(samples, "plait_xds_rejected_streams_total", reason="permission_denied") == 1


def test_push_and_convergence_histograms() -> None:
    metrics = ControlPlaneMetrics()
    metrics.xds.pushed("cds", 20_000, 0.004)
    metrics.xds.pushed("cds", 300, 0.2)
    metrics.xds.pushed("eds", 300, None)  # not caused by a new generation: no push time
    metrics.xds.converged(0.6)

    types, samples = scrape(metrics)

    assert types["plait_xds_push_time_seconds"] == types["pilot_xds_push_time"] == "histogram"
    assert value(samples, "plait_xds_push_time_seconds_count", type="cds") == 2
    assert value(samples, "plait_xds_push_time_seconds_bucket", type="cds", le="0.0025") == 0
    assert value(samples, "plait_xds_push_time_seconds_bucket", type="cds", le="0.005") == 1
    assert value(samples, "pilot_xds_push_time_bucket", type="cds", le="0.01") == 1
    assert value(samples, "pilot_xds_push_time_bucket", type="cds", le="1.0") == 2
    assert value(samples, "pilot_xds_push_time_count", type="eds") is None
    assert value(samples, "pilot_xds_config_size_bytes_count", type="eds") == 1
    assert value(samples, "pilot_xds_config_size_bytes_bucket", type="cds", le="10000.0") == 1
    assert value(samples, "plait_xds_config_size_bytes_sum", type="cds") == 20_300
    assert value(samples, "plait_xds_convergence_time_seconds_count") == 1
    assert value(samples, "pilot_proxy_convergence_time_bucket", le="0.5") == 0
    assert value(samples, "pilot_proxy_convergence_time_bucket", le="1.0") == 1


def test_config_errors_and_warnings_in_force() -> None:
    state = config_state(
        ConfigMessage("a.yaml", 0, "spec.http[0]", "no route"),
        ConfigMessage("b.yaml", 0, "spec", "shadowed", Severity.WARNING),
        ConfigMessage("b.yaml", 1, "spec", "unused", Severity.WARNING),
    )
    state.translation_errors["sidecar~x.default"] = "KeyError: 'x'"
    metrics = ControlPlaneMetrics()
    metrics.watch(FakeXds(), state, None)

    _, samples = scrape(metrics)

    assert value(samples, "plait_config_errors") == 1
    assert value(samples, "plait_config_warnings") == 2
    assert value(samples, "plait_config_translation_failures") == 1


def security_for(ca_dir: Path, tmp_path: Path) -> MeshSecurity:
    key = tmp_path / "token.pub"
    key.write_bytes(TokenIssuer.generate().public_key_pem)
    return MeshSecurity(SecurityOptions(ca_dir, key), "cluster.local", "127.0.0.1")


def test_ca_issuance_refusals_and_expiry(tmp_path: Path) -> None:
    soon = NOW.replace(microsecond=0) + dt.timedelta(days=10)
    root, _ = plugged_in(tmp_path / "cacerts", not_after=soon)
    (tmp_path / "cacerts" / "ca-key.pem").chmod(0o600)
    security = security_for(tmp_path / "cacerts", tmp_path)
    security.server.issued = 3
    security.server.refused.update({"unauthenticated": 2, "bad_csr": 1, "http_404": 1})
    metrics = ControlPlaneMetrics()
    metrics.watch(FakeXds(), config_state(), security)

    _, samples = scrape(metrics)

    assert value(samples, "plait_ca_certificates_issued_total") == 3
    assert value(samples, "citadel_server_success_cert_issuance_count") == 3
    assert value(samples, "plait_ca_refusals_total", reason="unauthenticated") == 2
    assert value(samples, "plait_ca_refusals_total", reason="http_404") == 1
    assert value(samples, "citadel_server_csr_count") == 6  # 3 issued + 3 refused CSRs
    assert value(samples, "citadel_server_authentication_failure_count") == 2
    assert value(samples, "citadel_server_csr_parsing_err_count") == 1
    expiry = {
        labels: v
        for (name, labels), v in samples.items()
        if name == "plait_ca_certificate_expiry_timestamp_seconds"
    }
    by_role = {dict(labels)["role"]: (dict(labels)["subject"], v) for labels, v in expiry.items()}
    root_expiry = root.not_valid_after_utc.timestamp()
    assert by_role == {
        "root": ("CN=user root", root_expiry),
        "intermediate": ("CN=user intermediate 0", soon.timestamp()),
    }
    assert value(samples, "citadel_server_root_cert_expiry_timestamp") == root_expiry
    assert value(samples, "citadel_server_cert_chain_expiry_timestamp") == soon.timestamp()
    serving = value(samples, "plait_ca_serving_certificate_expiry_timestamp_seconds")
    assert serving is not None and NOW.timestamp() < serving <= soon.timestamp()


def test_a_dedicated_registry_and_openmetrics_on_request() -> None:
    first, second = ControlPlaneMetrics(), ControlPlaneMetrics()  # no clash: not global
    first.xds.converged(0.1)
    assert REGISTRY.get_sample_value("plait_xds_convergence_time_seconds_count") is None
    assert second.registry.get_sample_value("plait_xds_convergence_time_seconds_count") == 0
    body, content_type = first.exposition("application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text")
    assert body.decode().endswith("# EOF\n")
