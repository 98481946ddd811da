"""Istio's request metrics counted by Envoy: the stats access logger on every HCM, its tags
per report, the caller's claim stamped outbound, the callee's labels in endpoint and
cluster metadata. (Envoy accepts all of it: test_translate_envoy_validate.)"""

from __future__ import annotations

import dataclasses

import pytest
from envoy.extensions.access_loggers.stats.v3 import stats_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.http.early_header_mutation.header_mutation.v3 import (
    header_mutation_pb2,
)
from google.protobuf import json_format
from translate_kit import (
    REVIEWS,
    REVIEWS_SERVICE,
    chain_hcm,
    clusters,
    hcms,
    instance,
    listeners,
    load_assignments,
    sidecar,
    snapshot,
)

from plait.model.labels import Labels
from plait.translate import metrics, names
from plait.translate.proxy import Translator

FRONTEND = """
apiVersion: v1
kind: Service
metadata: {name: frontend}
spec:
  selector: {app: frontend}
  ports: [{name: http, port: 8080}]
---
"""


def stats_tags(h: hcm_pb2.HttpConnectionManager) -> dict[str, str]:
    (log,) = [log for log in h.access_log if log.name == metrics.STATS_LOGGER]
    config = stats_pb2.Config()
    assert log.typed_config.Unpack(config)
    assert config.stat_prefix == "istiocustom"
    assert [c.stat.name for c in config.counters] == ["istio_requests_total"]
    assert [h.stat.name for h in config.histograms] == [
        "istio_request_duration_milliseconds",
        "istio_request_bytes",
        "istio_response_bytes",
    ]
    tags = {t.name: t.value_format for t in config.counters[0].stat.tags}
    for histogram in config.histograms:
        assert {t.name: t.value_format for t in histogram.stat.tags} == tags
    return tags


def stamped(h: hcm_pb2.HttpConnectionManager) -> dict[str, str]:
    out = {}
    for ext in h.early_header_mutation_extensions:
        mutation = header_mutation_pb2.HeaderMutation()
        ext.typed_config.Unpack(mutation)
        for m in mutation.mutations:
            out[m.append.header.key] = m.append.header.value
    return out


def config_for_frontend():  # type: ignore[no-untyped-def]
    proxy = dataclasses.replace(
        sidecar(),
        service_account="frontend",
        labels=Labels.of({"app": "frontend", "version": "v2"}),
    )
    snap = snapshot(REVIEWS_SERVICE + FRONTEND, [instance("reviews-0", 9001, app="reviews")])
    return proxy, Translator(snap).config_for(proxy)


def test_inbound_reports_as_destination_and_trusts_the_caller_only_over_mtls() -> None:
    _, config = config_for_frontend()
    inbound = listeners(config)[names.INBOUND_LISTENER]
    by_chain = {c.name: stats_tags(chain_hcm(c)) for c in inbound.filter_chains}
    mtls, plain = by_chain[names.INBOUND_MTLS_CHAIN], by_chain[names.INBOUND_PLAINTEXT_CHAIN]
    for tags in (mtls, plain):
        assert tags["reporter"] == "destination"
        assert tags["destination_workload"] == "frontend"
        assert tags["destination_version"] == "v2"
        assert tags["destination_service"] == "frontend.default.svc.cluster.local"
        assert tags["destination_service_name"] == "frontend"
        assert tags["response_code"] == "%RESPONSE_CODE%"
        assert not any(
            k.startswith("source_") and k not in ("source_peer", "source_principal") for k in tags
        )
    assert mtls["source_peer"] == "%REQ(x-plait-peer)%"
    assert mtls["source_principal"] == "%DOWNSTREAM_PEER_URI_SAN%"
    assert mtls["connection_security_policy"] == "mutual_tls"
    # plain text: no certificate vouches, so no header reaches a tag
    assert plain["source_peer"] == plain["source_principal"] == "unknown"
    assert plain["connection_security_policy"] == "none"


def test_outbound_reports_as_source_stamps_its_claim_and_reads_the_callee_from_metadata() -> None:
    proxy, config = config_for_frontend()
    (h,) = hcms(listeners(config)[names.OUTBOUND_LISTENER])
    tags = stats_tags(h)
    assert list(tags) == list(metrics.LABEL_NAMES)
    assert tags["reporter"] == "source"
    assert tags["source_workload"] == "frontend" and tags["source_app"] == "frontend"
    assert tags["source_principal"] == "%UPSTREAM_LOCAL_URI_SAN%"
    assert tags["destination_workload"] == "%METADATA(UPSTREAM_HOST:plait:workload)%"
    assert tags["destination_service"] == "%METADATA(CLUSTER:plait:service)%"
    assert tags["connection_security_policy"] == "unknown"
    assert stamped(h)[metrics.PEER_HEADER] == "default;frontend;frontend;frontend;v2;frontend;v2"
    assert h.http_filters[0].name == metrics.PROTOCOL_FILTER


def test_clusters_and_endpoints_carry_the_callees_labels() -> None:
    _, config = config_for_frontend()
    cluster = clusters(config)[names.outbound_cluster(REVIEWS, 8080)]
    assert json_format.MessageToDict(cluster.metadata.filter_metadata["plait"]) == {
        "service": REVIEWS,
        "name": "reviews",
        "namespace": "default",
    }
    cla = load_assignments(config)[names.outbound_cluster(REVIEWS, 8080)]
    (lb,) = cla.endpoints[0].lb_endpoints
    meta = json_format.MessageToDict(lb.metadata.filter_metadata["plait"])
    assert meta["workload"] == "reviews" and meta["app"] == "reviews"
    assert meta["canonical_revision"] == "latest" and meta["cluster"] == "Kubernetes"


def test_workload_labels_follow_istios_canonical_rules() -> None:
    labels = metrics.workload_labels("w", "ns", {"service.istio.io/canonical-name": "c"})
    assert labels["canonical_service"] == "c" and labels["app"] == "unknown"
    assert labels["canonical_revision"] == "latest"


@pytest.mark.parametrize("bad", ["a;b", "a%b"])
def test_a_claim_that_would_not_parse_back_is_refused(bad: str) -> None:
    proxy = dataclasses.replace(sidecar(), labels=Labels.of({"app": bad}))
    with pytest.raises(ValueError):
        metrics.peer_claim(proxy)
