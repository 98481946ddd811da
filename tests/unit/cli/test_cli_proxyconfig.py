"""`plait proxy-config KIND PROXY DIR`: tables, raw JSON/YAML, and clear failures, against
a fake Envoy admin that serves a real-shaped config dump (tests/configdumpkit.py)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from configdumpkit import ECHO, SPIFFE, admin_pages, fake_admin
from plait.cli import exitcodes
from plait.cli.main import app
from plait.local.statefile import MeshState, ProxyEntry, write_state

runner = CliRunner()


@dataclass
class Mesh:
    root: Path
    pages: dict[str, Any]

    def run(self, *args: str) -> tuple[int, str]:
        result = runner.invoke(app, ["proxy-config", *args], env={"COLUMNS": "250"})
        return result.exit_code, result.output


def _entry(name: str, workload: str, admin: str) -> ProxyEntry:
    return ProxyEntry(
        name=name,
        kind="sidecar",
        workload=workload,
        namespace="default",
        serviceAccount=workload,
        labels={"app": workload},
        admin=admin,
    )


@pytest.fixture
def mesh(tmp_path: Path) -> Iterator[Mesh]:
    """A state file as `plait up` writes it (this process stands in for its pid) whose
    client-0 proxy's admin is a fake Envoy admin."""
    pages = admin_pages()
    with fake_admin(pages) as admin:
        proxies = [
            _entry("sidecar~client-0.default", "client", admin),
            _entry("sidecar~echo-v1-0.default", "echo-v1", admin),
            _entry("sidecar~echo-v1-1.default", "echo-v1", admin),
        ]
        write_state(
            tmp_path,
            MeshState(
                pid=os.getpid(),
                phase="ready",
                root=str(tmp_path),
                xds="127.0.0.1:1",
                status_url="http://127.0.0.1:1/status",
                proxies=proxies,
            ),
        )
        yield Mesh(tmp_path, pages)


def _row(output: str, needle: str) -> str:
    return next(line for line in output.splitlines() if needle in line)


def test_cluster_table_shows_echo_with_auto_mtls_and_its_endpoint_count(mesh: Mesh) -> None:
    code, out = mesh.run("cluster", "client-0", str(mesh.root))
    assert code == exitcodes.OK, out
    row = _row(out, ECHO)
    assert "mTLS (auto)" in row and "EDS (2)" in row and "unlimited" in row
    assert "sidecar~client-0.default" in out  # the title names the proxy


def test_the_plural_and_the_workload_name_work_too(mesh: Mesh) -> None:
    code, out = mesh.run("clusters", "client", str(mesh.root))
    assert code == exitcodes.OK and ECHO in out


def test_listener_route_endpoint_and_bootstrap_tables(mesh: Mesh) -> None:
    code, out = mesh.run("listener", "client-0", str(mesh.root))
    assert code == 0 and "transport_protocol=tls" in _row(out, "inbound-mtls")
    assert "HCM → route inbound|9000||" in _row(out, "inbound-mtls")
    code, out = mesh.run("route", "client-0", str(mesh.root))
    row = _row(out, "echo.default.svc.cluster.local:8080 ")
    assert code == 0 and "echo:8080 (+1)" in row and ECHO in row
    code, out = mesh.run("endpoint", "client-0", str(mesh.root))
    assert code == 0 and "UNHEALTHY (outlier check)" in _row(out, "127.0.0.1:7002")
    assert "istio" in _row(out, "127.0.0.1:7001")
    code, out = mesh.run("bootstrap", "client-0", str(mesh.root))
    assert code == 0 and "127.0.0.1:15010 (cluster xds-grpc, TLS)" in out
    assert '{"app": "client"}' in _row(out, "metadata LABELS")


def test_secret_table_shows_the_spiffe_san_and_the_root(mesh: Mesh) -> None:
    code, out = mesh.run("secret", "client-0", str(mesh.root))
    assert code == exitcodes.OK, out
    assert SPIFFE in _row(out, "default  ")  # the secret named default
    assert "CA bundle" in _row(out, "ROOTCA")
    assert "ACTIVE, unused" in _row(out, "ROOTCA")  # /certs does not list the test root


@pytest.mark.parametrize(
    ("kind", "key"),
    [
        ("cluster", "dynamic_active_clusters"),
        ("listener", "dynamic_listeners"),
        ("route", "dynamic_route_configs"),
        ("endpoint", "dynamic_endpoint_configs"),
        ("secret", "dynamic_active_secrets"),
        ("bootstrap", "bootstrap"),
    ],
)
def test_json_and_yaml_print_the_raw_envoy_section(mesh: Mesh, kind: str, key: str) -> None:
    code, out = mesh.run(kind, "client-0", str(mesh.root), "-o", "json")
    assert code == exitcodes.OK, out
    raw = json.loads(out)
    assert key in raw and raw["@type"].startswith("type.googleapis.com/envoy.admin.v3.")
    code, out = mesh.run(kind, "client-0", str(mesh.root), "-o", "yaml")
    assert code == exitcodes.OK and yaml.safe_load(out) == raw


def test_secret_json_never_carries_a_private_key(mesh: Mesh) -> None:
    key_bytes = "S0VZIE1BVEVSSUFM"  # what a careless Envoy build could put there
    secret = mesh.pages["/config_dump"]["configs"][-1]["dynamic_active_secrets"][0]["secret"]
    secret["tls_certificate"]["private_key"] = {"inline_bytes": key_bytes}
    code, out = mesh.run("secret", "client-0", str(mesh.root), "-o", "json")
    assert code == exitcodes.OK
    assert key_bytes not in out and '"private_key": "[redacted]"' in out


def test_an_ambiguous_or_unknown_proxy_is_a_usage_error_naming_candidates(mesh: Mesh) -> None:
    code, out = mesh.run("cluster", "echo-v1", str(mesh.root))
    assert code == exitcodes.USAGE
    assert "sidecar~echo-v1-0.default" in out and "sidecar~echo-v1-1.default" in out
    code, out = mesh.run("cluster", "nope", str(mesh.root))
    assert code == exitcodes.USAGE and "no proxy 'nope'" in out


def test_an_unreachable_admin_and_a_missing_mesh_fail_clearly(mesh: Mesh, tmp_path: Path) -> None:
    del mesh.pages["/config_dump"]
    code, out = mesh.run("listener", "client-0", str(mesh.root))
    assert code == exitcodes.PROXY_UNREACHABLE and "/config_dump" in out
    empty = tmp_path / "empty"
    empty.mkdir()
    code, out = mesh.run("cluster", "client-0", str(empty))
    assert code == exitcodes.NOT_RUNNING and "no mesh is running" in out
