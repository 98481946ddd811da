"""A Translator built from the previous one reuses exactly what did not change: its configs
equal a fresh translation's for changes of every kind, and unchanged resources are the
very same objects (so nothing is re-serialized and the server sees equal digests)."""

from __future__ import annotations

import pytest
from translate_kit import REVIEWS_SERVICE, gateway, instance, sidecar, snapshot

from plait.model.registry import WorkloadInstance
from plait.translate import typeurls
from plait.translate.proxy import Translator
from plait.translate.resource import ProxyConfig
from policykit import peer_authentication

RATINGS = """---
apiVersion: v1
kind: Service
metadata: {name: ratings}
spec:
  selector: {app: ratings}
  ports: [{name: http, port: 9080}]
"""
GATEWAY = """---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: web, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]
"""


def routing(weight: int) -> str:
    return f"""---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: reviews}}
spec:
  host: reviews
  subsets: [{{name: v1, labels: {{version: v1}}}}, {{name: v2, labels: {{version: v2}}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: reviews}}
spec:
  hosts: [reviews]
  gateways: [mesh, web]
  http:
    - route:
        - {{destination: {{host: reviews, subset: v1}}, weight: {weight}}}
        - {{destination: {{host: reviews, subset: v2}}, weight: {100 - weight}}}
"""


BASE = REVIEWS_SERVICE + RATINGS + GATEWAY + routing(90)
V1 = instance("reviews-v1-0", 20001, app="reviews", version="v1")
R1 = instance("ratings-v1-0", 20011, app="ratings", version="v1")
R2 = instance("ratings-v1-1", 20012, app="ratings", version="v1")
STRICT = peer_authentication("strict", "mtls: {mode: STRICT}")
NO_REQUEST_COUNT = """---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: quiet, namespace: default}
spec:
  metrics: [{overrides: [{match: {metric: REQUEST_COUNT}, disabled: true}]}]
"""
CONSTANT = {(typeurls.CLUSTER, "PassthroughCluster")}  # rebuilt each time, same bytes
PROXIES = (sidecar("frontend-0"), sidecar("reviews-0", inbound_port=22001), gateway((80, 8080)))


def resources(config: ProxyConfig) -> dict[tuple[str, str], object]:
    return {(t, n): r for t, by_name in config.by_type.items() for n, r in by_name.items()}


def reused(before: Translator, after: Translator, proxy: object) -> set[tuple[str, str]]:
    """The (type, name) of `proxy`'s resources that are the same objects in both."""
    old, new = resources(before.config_for(proxy)), resources(after.config_for(proxy))  # type: ignore[arg-type]
    return {key for key, r in new.items() if old.get(key) is r}


CHANGES: list[tuple[str, str, tuple[WorkloadInstance, ...]]] = [
    ("nothing", BASE, (V1, R1)),
    ("virtual service weight", REVIEWS_SERVICE + RATINGS + GATEWAY + routing(50), (V1, R1)),
    ("endpoint joins", BASE, (V1, R1, R2)),
    ("peer authentication", BASE + "---\n" + STRICT, (V1, R1)),
    ("telemetry", BASE + NO_REQUEST_COUNT, (V1, R1)),
    ("service added", BASE + RATINGS.replace("ratings", "details"), (V1, R1)),
]


@pytest.mark.parametrize(("change", "text", "instances"), CHANGES, ids=[c[0] for c in CHANGES])
def test_reused_translation_equals_a_fresh_one(
    change: str, text: str, instances: tuple[WorkloadInstance, ...]
) -> None:
    before = served(BASE, (V1, R1))
    new = snapshot(text, instances, 2)
    after, fresh = Translator(new, previous=before), Translator(new)
    for proxy in PROXIES:
        got, want = after.config_for(proxy), fresh.config_for(proxy)
        assert got.versions == want.versions, (change, proxy.id)
        assert {k: r.body for k, r in resources(got).items()} == {  # type: ignore[attr-defined]
            k: r.body  # type: ignore[attr-defined]
            for k, r in resources(want).items()
        }


def served(text: str, instances: tuple[WorkloadInstance, ...]) -> Translator:
    """A Translator that has served every proxy (as the one a publish replaces has)."""
    translator = Translator(snapshot(text, instances, 1))
    for proxy in PROXIES:
        translator.config_for(proxy)
    return translator


def test_an_endpoint_change_rebuilds_only_the_host_it_touches() -> None:
    before = served(BASE, (V1, R1))
    after = Translator(snapshot(BASE, (V1, R1, R2), 2), previous=before)
    proxy = PROXIES[0]
    same = reused(before, after, proxy)
    config = after.config_for(proxy)
    ratings = {(t, n) for t in (typeurls.CLUSTER, typeurls.ENDPOINT) for n in config.resources(t)}
    ratings = {k for k in ratings if "ratings" in k[1]}
    assert ratings and not ratings & same  # the touched host: rebuilt
    untouched = set(resources(config)) - ratings - CONSTANT
    assert untouched <= same  # everything else: the very same objects


def test_a_route_edit_rebuilds_only_route_tables() -> None:
    before = served(BASE, (V1, R1))
    text = REVIEWS_SERVICE + RATINGS + GATEWAY + routing(50)
    after = Translator(snapshot(text, (V1, R1), 2), previous=before)
    for proxy in PROXIES[:2]:
        config = after.config_for(proxy)
        changed = set(resources(config)) - reused(before, after, proxy) - CONSTANT
        assert changed == {(typeurls.ROUTE, "outbound")}, proxy.id


def test_a_policy_change_is_not_taken_over() -> None:
    before = served(BASE, (V1, R1))
    after = Translator(snapshot(BASE + "---\n" + STRICT, (V1, R1), 2), previous=before)
    proxy = PROXIES[1]
    changed = set(resources(after.config_for(proxy))) - reused(before, after, proxy)
    assert (typeurls.LISTENER, "virtualInbound") in changed
