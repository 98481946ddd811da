"""Reading a proxy's Envoy admin: which proxy a name means, fetching, picking sections."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from configdumpkit import config_dump, fake_admin
from plait.errors import EnvoyAdminError, ProxyLookupError
from plait.local.configdump import (
    REDACTED,
    envoy_version,
    fetch_config_dump,
    fetch_server_info,
    find_proxy,
    instance_of,
    redact,
    section,
)
from plait.local.statefile import ProxyEntry


def _entry(name: str, workload: str, namespace: str = "default") -> ProxyEntry:
    return ProxyEntry(
        name=name,
        kind=name.split("~")[0],
        workload=workload,
        namespace=namespace,
        serviceAccount="default",
        labels={},
        admin="127.0.0.1:1",
    )


ENTRIES = [
    _entry("gateway~istio-ingressgateway.istio-system", "istio-ingressgateway", "istio-system"),
    _entry("sidecar~client-0.default", "client"),
    _entry("sidecar~echo-v1-0.default", "echo-v1"),
    _entry("sidecar~echo-v1-1.default", "echo-v1"),
    _entry("sidecar~web.v2-0.shop", "web.v2", "shop"),
]


@pytest.mark.parametrize(
    ("wanted", "found"),
    [
        ("sidecar~client-0.default", "sidecar~client-0.default"),
        ("client-0", "sidecar~client-0.default"),
        ("client-0.default", "sidecar~client-0.default"),
        ("client", "sidecar~client-0.default"),  # a workload with one replica
        ("echo-v1-1", "sidecar~echo-v1-1.default"),
        ("istio-ingressgateway", "gateway~istio-ingressgateway.istio-system"),
        ("web.v2-0", "sidecar~web.v2-0.shop"),  # a dot in the instance name
    ],
)
def test_a_proxy_is_found_by_name_instance_or_single_replica_workload(
    wanted: str, found: str
) -> None:
    assert find_proxy(ENTRIES, wanted).name == found


def test_a_workload_with_several_replicas_is_ambiguous_and_the_error_lists_them() -> None:
    with pytest.raises(ProxyLookupError, match="2 proxies") as info:
        find_proxy(ENTRIES, "echo-v1")
    assert "sidecar~echo-v1-0.default" in str(info.value)
    assert "sidecar~echo-v1-1.default" in str(info.value)


def test_an_unknown_proxy_error_lists_the_proxies_there_are() -> None:
    with pytest.raises(ProxyLookupError, match="no proxy 'nope'") as info:
        find_proxy(ENTRIES, "nope")
    assert "sidecar~client-0.default" in str(info.value)


def test_instance_of_strips_kind_and_namespace() -> None:
    assert [instance_of(e) for e in ENTRIES] == [
        "istio-ingressgateway",
        "client-0",
        "echo-v1-0",
        "echo-v1-1",
        "web.v2-0",
    ]


def test_section_picks_the_kind_and_redacts_private_keys() -> None:
    secrets = section(config_dump(), "secret")
    assert secrets["@type"].endswith("SecretsConfigDump")
    tls = secrets["dynamic_active_secrets"][0]["secret"]["tls_certificate"]
    assert tls["private_key"] == REDACTED
    assert "inline_bytes" in tls["certificate_chain"]
    assert section(config_dump(), "cluster")["dynamic_active_clusters"]


def test_a_missing_section_is_an_empty_one_of_its_type() -> None:
    assert section({"configs": []}, "secret") == {
        "@type": "type.googleapis.com/envoy.admin.v3.SecretsConfigDump"
    }


def test_redact_reaches_every_depth_and_every_secret_field() -> None:
    value = {
        "a": [{"private_key": {"inline_bytes": "S0VZ"}}],
        "generic_secret": {"secret": {"inline_string": "hmac"}},
        "b": {"password": "x", "keep": 1},
    }
    assert redact(value) == {
        "a": [{"private_key": REDACTED}],
        "generic_secret": REDACTED,
        "b": {"password": REDACTED, "keep": 1},
    }


def test_envoy_version_reads_the_release_from_server_info() -> None:
    info = {"version": "9e5580933739775e8bce696a57a2e1bc99368f23/1.40.0/Clean/RELEASE/BoringSSL"}
    assert envoy_version(info) == "1.40.0"
    assert envoy_version({}) is None


@pytest.fixture
def pages() -> dict[str, object]:
    return {}


@pytest.fixture
def admin(pages: dict[str, object]) -> Iterator[str]:
    with fake_admin(pages) as address:
        yield address


def test_fetch_asks_for_eds_only_when_told(admin: str, pages: dict[str, object]) -> None:
    pages.update({"/config_dump": {"configs": []}, "/config_dump?include_eds": {"configs": [1]}})
    assert fetch_config_dump(admin) == {"configs": []}
    assert fetch_config_dump(admin, include_eds=True) == {"configs": [1]}


def test_fetch_errors_say_which_url_failed(admin: str, pages: dict[str, object]) -> None:
    pages["/server_info"] = b"not json"
    with pytest.raises(EnvoyAdminError, match=f"http://{admin}/server_info"):
        fetch_server_info(admin)
    with pytest.raises(EnvoyAdminError, match="404"):
        fetch_config_dump(admin)


def test_an_admin_that_is_gone_is_an_envoy_admin_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(EnvoyAdminError, match="is the proxy running"):
        fetch_server_info(f"127.0.0.1:{port}")
