"""The Translator's config fast path: for a snapshot that differs in VirtualServices and
DestinationRules only (`with_config`), it translates again for the proxies that read what
changed (the scoped ones through `Dependents`, every unscoped sidecar and gateway) and
takes every other config over as the very same object; each config equals a fresh
translation, and `changed` names exactly the proxies whose configs are new objects.
Changes the fast path does not take (exportTo, hosts, a deletion) go the general way and
are checked the same."""

from __future__ import annotations

from dataclasses import fields, replace

import pytest
from translate_kit import gateway, instance, sidecar

from configfiles import config
from plait.api import Loaded
from plait.model.proxy import Proxy, Traffic
from plait.model.snapshot import MeshSnapshot, build_snapshot
from plait.model.withconfig import with_config
from plait.translate import typeurls
from plait.translate.proxy import Translator
from plait.translate.resource import ProxyConfig

NAMES = ("a", "b", "c", "d", "e", "web", "api", "free", "cap")


def service(name: str) -> str:
    return f"""apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: default}}
spec:
  clusterIP: 10.0.0.{NAMES.index(name) + 1}
  selector: {{app: {name}}}
  ports: [{{name: http, port: 8080}}]
"""


def vs(name: str, value: str = "0", hosts: str = "", extra: str = "", dest: str = "") -> str:
    return f"""apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: {name}, namespace: default}}
spec:
  hosts: [{hosts or name}]
{extra}  http: [{{headers: {{request: {{set: {{x-edit: "{value}"}}}}}}, route: [{{destination: {{host: {dest or name}}}}}]}}]
"""


def dr(name: str, connections: int = 10) -> str:
    return f"""apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: {name}, namespace: default}}
spec:
  host: {name}
  trafficPolicy: {{connectionPool: {{tcp: {{maxConnections: {connections}}}}}}}
"""


def sidecar_for(app: str, *hosts: str) -> str:
    egress = ", ".join(f"./{h}.default.svc.cluster.local" for h in hosts)
    return f"""apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {{name: {app}, namespace: default}}
spec:
  workloadSelector: {{labels: {{app: {app}}}}}
  egress: [{{hosts: [{egress}]}}]
"""


GATEWAY = """apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: web, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]
"""
SCOPED: dict[str, str] = {
    **{f"svc-{n}": service(n) for n in NAMES},
    **{f"vs-{n}": vs(n) for n in "abcde"},
    **{f"dr-{n}": dr(n) for n in "ac"},
    "sidecar-web": sidecar_for("web", "a", "b"),
    "sidecar-api": sidecar_for("api", "c", "d"),
    "sidecar-cap": sidecar_for("cap", "b", "d"),
    "gateway": GATEWAY,
    "vs-gw": vs("gw", "0", '"*"', "  gateways: [web]\n", dest="a"),
}
INSTANCES = tuple(instance(f"{n}-0", 20000 + i, app=n) for i, n in enumerate(NAMES))
PROXIES = (
    sidecar("web-0"),
    sidecar("web-1", inbound_port=21011, app_port=21012, outbound_port=21013),
    sidecar("api-0", inbound_port=21021, app_port=21022, outbound_port=21023),
    sidecar("free-0", inbound_port=21031, app_port=21032, outbound_port=21033),
    replace(sidecar("cap-0", outbound_port=None), traffic=Traffic.CAPTURED),
    gateway((80, 8080)),
)
GW = PROXIES[-1].id


def bodies(config: ProxyConfig) -> dict[tuple[str, str], bytes]:
    return {(t, n): r.body for t, by in config.by_type.items() for n, r in by.items()}


def served(snap: MeshSnapshot) -> Translator:
    translator = Translator(snap)
    translator.warm()  # (nothing to warm: the first one)
    for proxy in PROXIES:
        translator.config_for(proxy)
    return translator


def step(
    previous: Translator, files: dict[str, str], after: dict[str, str], version: int
) -> tuple[Translator, bool]:
    """The next Translator (warmed) for `after`, and whether the snapshot was derived."""
    derived = with_config(previous.snapshot, config(files), config(after), version)
    snap = derived or build_snapshot(config(after), INSTANCES, version)
    translator = Translator(snap, previous=previous)
    translator.warm()
    return translator, derived is not None


def check(before: Translator, after: Translator, proxies: tuple[Proxy, ...]) -> set[str]:
    """Every config equals a fresh translation; `changed` is right; the changed ids."""
    fresh = Translator(build_snapshot(config_of(after.snapshot), INSTANCES, after.snapshot.version))
    assert after.changed is not None
    for proxy in proxies:
        got, want = after.config_for(proxy), fresh.config_for(proxy)
        assert bodies(got) == bodies(want), proxy.id
        assert got.versions == want.versions, proxy.id
        was = before.config_for(proxy)
        assert (got is not was) == (proxy.id in after.changed), proxy.id
    return set(after.changed)


_files_of: dict[int, dict[str, str]] = {}


def config_of(snap: MeshSnapshot) -> list[Loaded]:
    return config(_files_of[snap.version])


def ids(*apps: str) -> set[str]:
    return {p.id for p in PROXIES if p.workload in apps}


# (what, the change, fast path?, the proxies the fast path translates again)
STEPS: list[tuple[str, dict[str, str], bool, set[str] | None]] = [
    ("a VirtualService in web's scope", {"vs-a": vs("a", "1")}, True, ids("web", "free")),
    ("a rule in api's scope", {"dr-c": dr("c", 20)}, True, ids("api", "free")),
    ("a VirtualService in cap's and web's", {"vs-b": vs("b", "1")}, True, ids("web", "cap", "free")),
    ("a VirtualService in no Sidecar's", {"vs-e": vs("e", "1")}, True, ids("free")),
    ("a gateway's VirtualService", {"vs-gw": vs("gw", "1", '"*"', "  gateways: [web]\n", dest="a")}, True, set()),
    ("a rule added", {"dr-d": dr("d", 5)}, True, ids("api", "cap", "free")),
    ("exportTo hides a VirtualService", {"vs-a": vs("a", "1", extra="  exportTo: [other]\n")}, False, None),
    ("a VirtualService moves hosts", {"vs-b": vs("b", "1", hosts="c")}, False, None),
    ("a VirtualService deleted", {"vs-d": ""}, False, None),
    ("a rule deleted", {"dr-a": ""}, True, ids("web", "free")),
    ("a VirtualService back in web's scope", {"vs-a": vs("a", "2")}, False, None),
    ("and edited again", {"vs-a": vs("a", "3")}, True, ids("web", "free")),
]  # fmt: skip


def test_a_chain_of_config_changes_equals_fresh_translations() -> None:
    files = dict(SCOPED)
    _files_of[1] = files
    previous = served(build_snapshot(config(files), INSTANCES, 1))
    for version, (what, change, fast, again) in enumerate(STEPS, start=2):
        after_files = {k: v for k, v in (files | change).items() if v}
        _files_of[version] = after_files
        after, derived = step(previous, files, after_files, version)
        assert derived, what  # every one of these is a VirtualService/DestinationRule change
        changed = check(previous, after, PROXIES)
        if fast:
            assert again is not None
            assert after.built.config_affected == len(again | {GW}), what
            assert changed <= again | {GW}, what
        else:
            assert after.built.config_affected == -1, what
        previous, files = after, after_files


def test_an_edit_reaches_exactly_its_dependents() -> None:
    files = dict(SCOPED)
    _files_of[1] = files
    before = served(build_snapshot(config(files), INSTANCES, 1))
    after_files = files | {"vs-c": vs("c", "1")}
    _files_of[2] = after_files
    after, _ = step(before, files, after_files, 2)
    assert check(before, after, PROXIES) == ids("api", "free")  # the gateway's is the same
    assert after.built.config_affected == 3  # those and the gateway, no other looked at


UNSCOPED = {k: v for k, v in SCOPED.items() if not k.startswith("sidecar-")}


@pytest.mark.parametrize(
    "change",
    [
        {"vs-a": vs("a", "1")},
        {"dr-a": dr("a", 3)},
        {"vs-gw": vs("gw", "1", '"*"', "  gateways: [web]\n", dest="a")},
    ],
    ids=["a VirtualService", "a rule", "a gateway's VirtualService"],
)
def test_unscoped_proxies_are_translated_again(change: dict[str, str]) -> None:
    _files_of[1] = UNSCOPED
    before = served(build_snapshot(config(UNSCOPED), INSTANCES, 1))
    assert before.snapshot.scope_inputs is None
    _files_of[2] = UNSCOPED | change
    after, derived = step(before, UNSCOPED, UNSCOPED | change, 2)
    assert derived
    assert after.built.config_affected == len(PROXIES)
    check(before, after, PROXIES)


def test_the_derived_snapshots_equal_full_builds() -> None:
    """(What the checks above rest on, for these meshes: see test_model_with_config.)"""
    files = dict(SCOPED)
    snap = build_snapshot(config(files), INSTANCES, 1)
    for version, (_, change, _, _) in enumerate(STEPS, start=2):
        after = {k: v for k, v in (files | change).items() if v}
        got = with_config(snap, config(files), config(after), version)
        assert got is not None
        want = build_snapshot(config(after), INSTANCES, version)
        for f in fields(MeshSnapshot):
            assert getattr(got, f.name) == getattr(want, f.name), f.name
        snap, files = got, after


HEADLESS = {
    "svc-hl": service("a").replace("name: a,", "name: hl,").replace(
        "clusterIP: 10.0.0.1", "clusterIP: None"
    ).replace("app: a", "app: hl"),
    "svc-cap": service("cap"),
    "vs-hl": vs("hl"),
    "dr-hl": dr("hl"),
    "sidecar-cap": sidecar_for("cap", "hl"),  # scoped: no outbound table reads the route
}  # fmt: skip
HEADLESS_PODS = (
    replace(instance("hl-0", 20050, app="hl"), address="10.1.0.5"),
    replace(instance("cap-0", 20051, app="cap"), address="10.1.0.9"),
)
CAPTURED = replace(
    sidecar("cap-0", outbound_port=None), traffic=Traffic.CAPTURED, address="10.1.0.9"
)


def test_captured_sidecars_reaching_headless_pods_are_translated_again() -> None:
    """Their pods' route tables and clusters read routing and rules (made per snapshot)."""
    files = HEADLESS
    previous = Translator(build_snapshot(config(files), HEADLESS_PODS, 1))
    for proxy in (CAPTURED, PROXIES[0]):
        previous.config_for(proxy)
    assert any("hl" in name for name in previous.config_for(CAPTURED).resources(typeurls.ROUTE))
    for version, change in enumerate([{"vs-hl": vs("hl", "1")}, {"dr-hl": dr("hl", 7)}], start=2):
        after_files = files | change
        snap = with_config(previous.snapshot, config(files), config(after_files), version)
        assert snap is not None
        after = Translator(snap, previous=previous)
        after.warm()
        assert after.built.config_affected == 2, change  # the captured one and web-0
        fresh = Translator(build_snapshot(config(after_files), HEADLESS_PODS, version))
        for proxy in (CAPTURED, PROXIES[0]):
            got, want = after.config_for(proxy), fresh.config_for(proxy)
            assert bodies(got) == bodies(want), (change, proxy.id)
        assert CAPTURED.id in (after.changed or ()), change
        previous, files = after, after_files
