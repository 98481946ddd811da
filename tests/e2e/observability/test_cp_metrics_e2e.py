"""The control plane's /metrics on a running lab: found through `plait status -o json`,
parsed with prometheus_client's text parser; proxies, CA issuance and pushes add up."""

from __future__ import annotations

import time
import urllib.request

import pytest
from labkit import Lab
from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

ONLY_V2 = """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo-v2}
spec:
  hosts: [echo]
  http:
    - route:
        - destination: {host: echo, subset: v2}
"""


@pytest.fixture(scope="module")
def metrics_url(lab: Lab) -> str:
    url = lab.mesh.status()["controlPlane"]["metrics"]
    assert isinstance(url, str) and url.startswith("http://127.0.0.1:"), url
    return url


def scrape(url: str) -> Samples:
    with urllib.request.urlopen(url, timeout=3) as resp:
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = resp.read().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of `name` over the samples that carry `labels` (others free)."""
    want = set(labels.items())
    return sum(v for (n, lab), v in samples.items() if n == name and want <= lab)


def test_connected_proxies_are_the_labs_proxies(lab: Lab, metrics_url: str) -> None:
    proxies = lab.mesh.status()["proxies"]
    samples = scrape(metrics_url)
    assert total(samples, "pilot_xds") == len(proxies)
    for kind in ("sidecar", "gateway"):
        expected = sum(1 for p in proxies if p["kind"] == kind)
        assert total(samples, "plait_xds_connected_proxies", kind=kind) == expected, kind
    assert total(samples, "plait_xds_proxies_with_nack") == 0
    assert total(samples, "plait_config_errors") == 0


def test_the_ca_issued_the_proxies_certificates(lab: Lab, metrics_url: str) -> None:
    samples = scrape(metrics_url)
    proxies = len(lab.mesh.status()["proxies"])
    assert total(samples, "citadel_server_success_cert_issuance_count") >= proxies
    assert total(samples, "plait_ca_certificates_issued_total") >= proxies
    assert total(samples, "citadel_server_csr_count") >= proxies
    assert total(samples, "citadel_server_root_cert_expiry_timestamp") > time.time()
    serving = total(samples, "plait_ca_serving_certificate_expiry_timestamp_seconds")
    assert serving > time.time()


def test_pushes_and_convergence_go_up_after_a_virtual_service(lab: Lab, metrics_url: str) -> None:
    before = scrape(metrics_url)
    with lab.config("echo-v2", ONLY_V2):  # returns once every proxy ACKed it
        after = scrape(metrics_url)
    sidecars = sum(1 for p in lab.mesh.status()["proxies"] if p["kind"] == "sidecar")

    def grew(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    assert grew("pilot_xds_pushes", type="rds") >= sidecars  # every sidecar routes to echo
    assert grew("plait_xds_pushes_total", type="rds", reason="config") >= sidecars
    assert grew("pilot_xds_push_time_count", type="rds") >= sidecars
    assert grew("pilot_proxy_convergence_time_count") >= sidecars
    assert grew("plait_xds_convergence_time_seconds_count") >= sidecars
    assert grew("pilot_total_xds_rejects") == 0
