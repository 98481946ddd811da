"""The Translator's endpoint fast path: for a snapshot that differs in endpoints only
(`with_instances`), it builds the affected hosts and nothing else (`Translator.built`),
every proxy's config differs from the previous one in its EDS mapping only, and equals a
fresh translation; anything more than endpoints takes the full path."""

from __future__ import annotations

from dataclasses import replace

from translate_kit import REVIEWS_SERVICE, gateway, instance, sidecar, snapshot

from plait.api import load_text
from plait.model.registry import WorkloadInstance
from plait.model.snapshot import MeshSnapshot, with_instances
from plait.translate import typeurls
from plait.translate.proxy import Translator
from plait.translate.resource import ProxyConfig

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
TEXT = REVIEWS_SERVICE + RATINGS + GATEWAY
V1 = instance("reviews-v1-0", 20001, app="reviews", version="v1")
R1 = instance("ratings-v1-0", 20011, app="ratings", version="v1")
R2 = instance("ratings-v1-1", 20012, app="ratings", version="v1")
PROXIES = (sidecar("frontend-0"), sidecar("reviews-0", inbound_port=22001), gateway((80, 8080)))
RATINGS_HOST = "ratings.default.svc.cluster.local"


def served(snap: MeshSnapshot) -> Translator:
    translator = Translator(snap)
    for proxy in PROXIES:
        translator.config_for(proxy)
    return translator


def endpoint_change(
    before: MeshSnapshot,
    old: tuple[WorkloadInstance, ...],
    new: tuple[WorkloadInstance, ...],
    text: str = TEXT,
) -> MeshSnapshot:
    resources = load_text(text, "mesh.yaml").resources
    return with_instances(before, resources, old, new, before.version + 1)[0]


def bodies(config: ProxyConfig) -> dict[tuple[str, str], bytes]:
    return {(t, n): r.body for t, by in config.by_type.items() for n, r in by.items()}


def test_an_endpoint_change_builds_only_its_hosts_endpoint_sets() -> None:
    first = snapshot(TEXT, (V1, R1))
    before = served(first)
    after = Translator(endpoint_change(first, (V1, R1), (V1, R1, R2)), previous=before)
    fresh = Translator(after.snapshot)
    for proxy in PROXIES:
        old, new = before.config_for(proxy), after.config_for(proxy)
        assert bodies(new) == bodies(fresh.config_for(proxy)), proxy.id
        assert new.versions == fresh.config_for(proxy).versions, proxy.id
        for type_url in (typeurls.CLUSTER, typeurls.LISTENER, typeurls.ROUTE):
            assert new.resources(type_url) is old.resources(type_url)  # not even re-assembled
            assert new.version(type_url) == old.version(type_url)
        changed = {
            n
            for n, r in new.resources(typeurls.ENDPOINT).items()
            if r is not old.resources(typeurls.ENDPOINT)[n]
        }
        assert changed and all("ratings" in n for n in changed), changed
    assert after.built.endpoint_hosts == {RATINGS_HOST}
    assert (after.built.hosts, after.built.own, after.built.tables) == (1, 0, 0)
    assert (after.built.configs, after.built.eds_swaps) == (0, len(PROXIES))


def test_fast_paths_chain() -> None:
    first = snapshot(TEXT, (V1, R1))
    one = endpoint_change(first, (V1, R1), (V1, R1, R2))
    two = endpoint_change(one, (V1, R1, R2), (V1, R1))
    translator = Translator(two, previous=Translator(one, previous=served(first)))
    fresh = Translator(two)
    for proxy in PROXIES:
        assert bodies(translator.config_for(proxy)) == bodies(fresh.config_for(proxy))
    assert translator.built.endpoint_hosts == {RATINGS_HOST}
    assert translator.built.configs == 0


def test_a_full_build_with_only_endpoints_changed_is_not_the_fast_path() -> None:
    """The gate is identity: a rebuilt snapshot is compared input by input instead."""
    before = served(snapshot(TEXT, (V1, R1)))
    after = Translator(snapshot(TEXT, (V1, R1, R2), 2), previous=before)
    for proxy in PROXIES:
        after.config_for(proxy)
    assert after.built.endpoint_hosts == frozenset()
    assert after.built.configs == len(PROXIES)


def test_a_mixed_change_takes_the_full_path() -> None:
    """A new service with the new replica: the new snapshot is a full build (the
    builder makes one whenever config changed), so listeners and routes are rebuilt."""
    before = served(snapshot(TEXT, (V1, R1)))
    text = TEXT + RATINGS.replace("ratings", "details")
    after = Translator(snapshot(text, (V1, R1, R2), 2), previous=before)
    fresh = Translator(after.snapshot)
    for proxy in PROXIES:
        assert bodies(after.config_for(proxy)) == bodies(fresh.config_for(proxy))
    assert after.built.endpoint_hosts == frozenset()
    assert after.built.tables > 0 and after.built.configs == len(PROXIES)


def test_a_replica_with_a_new_identity_changes_the_clusters_too() -> None:
    """A replica under another service account changes the clusters' SANs: the fast
    path does not apply, and CDS changes along with EDS."""
    first = snapshot(TEXT, (V1, R1))
    before = served(first)
    other = replace(R2, service_account="ratings-canary")
    after = Translator(endpoint_change(first, (V1, R1), (V1, R1, other)), previous=before)
    fresh = Translator(after.snapshot)
    proxy = PROXIES[0]
    new = after.config_for(proxy)
    assert bodies(new) == bodies(fresh.config_for(proxy))
    assert new.version(typeurls.CLUSTER) != before.config_for(proxy).version(typeurls.CLUSTER)
    assert after.built.endpoint_hosts == frozenset()
    assert after.built.own == 0  # still taken over: only the host's resources changed


SCOPED = """---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: frontend, namespace: default}
spec:
  workloadSelector: {labels: {app: frontend}}
  egress: [{hosts: ["./reviews.default.svc.cluster.local"]}]
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: reviews, namespace: default}
spec:
  workloadSelector: {labels: {app: reviews}}
  egress: [{hosts: ["./ratings.default.svc.cluster.local"]}]
"""


def test_a_proxy_scoped_away_from_the_hosts_keeps_its_config() -> None:
    """frontend reaches reviews only: a ratings replica leaves its config the very same
    object, not even assembled again; reviews reaches ratings: its endpoints change."""
    text = TEXT + SCOPED
    first = snapshot(text, (V1, R1))
    before = served(first)
    changed = endpoint_change(first, (V1, R1), (V1, R1, R2), text)
    after = Translator(changed, previous=before)
    after.warm()
    fresh = Translator(changed)
    frontend, reviews = PROXIES[0], PROXIES[1]
    assert after.config_for(frontend) is before.config_for(frontend)
    assert bodies(after.config_for(reviews)) == bodies(fresh.config_for(reviews))
    assert after.config_for(reviews).version(typeurls.ENDPOINT) != before.config_for(
        reviews
    ).version(typeurls.ENDPOINT)
    for proxy in PROXIES:
        assert bodies(after.config_for(proxy)) == bodies(fresh.config_for(proxy)), proxy.id
    assert after.built.eds_untouched == 1  # frontend
    assert after.built.configs == 1  # reviews, assembled again
    assert after.changed == {reviews.id, PROXIES[2].id}  # the gateway sees every host


def test_the_fast_path_holds_when_every_proxy_is_scoped() -> None:
    """No proxy reads the all-hosts mapping (the bench's scoped mesh): the endpoint
    change still rebuilds one host and assembles only the proxy that reaches it."""
    text = TEXT + SCOPED
    first = snapshot(text, (V1, R1))
    before = Translator(first)
    frontend, reviews = PROXIES[0], PROXIES[1]
    for proxy in (frontend, reviews):
        before.config_for(proxy)
    changed = endpoint_change(first, (V1, R1), (V1, R1, R2), text)
    after = Translator(changed, previous=before)
    after.warm()
    fresh = Translator(changed)
    for proxy in (frontend, reviews):
        assert bodies(after.config_for(proxy)) == bodies(fresh.config_for(proxy)), proxy.id
    assert after.built.endpoint_hosts == {RATINGS_HOST}
    assert (after.built.hosts, after.built.configs, after.built.eds_untouched) == (1, 1, 1)
    assert after.changed == {reviews.id}
