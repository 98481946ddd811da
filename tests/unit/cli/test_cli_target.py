"""Local mesh or cluster for proxy-status, proxy-config and describe: a DIRECTORY alone is
local mode (even with $KUBECONFIG set); --kubeconfig/--context, or no DIRECTORY, is a
cluster; both is a usage error. Cluster answers are faked at `ControlPlane.get_json` (the
e2e test in tests/e2e/kube/test_kubecli_e2e.py goes through a real API server)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from plait.cli import exitcodes
from plait.cli.main import app
from plait.cli.target import is_cluster
from plait.errors import ControlPlaneNotFoundError, KubeForbiddenError
from plait.kube.controlplane import ControlPlane

runner = CliRunner()
PROXY = "sidecar~client-0.shop"
STATUS = {
    "controlPlane": {"generation": 3},
    "proxies": [
        {
            "name": PROXY,
            "kind": "sidecar",
            "workload": "client",
            "namespace": "shop",
            "serviceAccount": "default",
            "labels": {"app": "client"},
            "connected": True,
            "generation": 3,
            "sync": {"cds": "SYNCED", "eds": "SYNCED", "lds": "SYNCED", "rds": "NOT SENT"},
            "nack": None,
        }
    ],
}
DUMP = {
    "configs": [
        {
            "@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump",
            "dynamic_active_clusters": [
                {
                    "version_info": "v",
                    "cluster": {
                        "name": "outbound|80||web.shop.svc.cluster.local",
                        "type": "STATIC",
                    },
                }
            ],
        }
    ]
}


def kubeconfig(path: Path, server: str = "https://127.0.0.1:1") -> Path:
    path.write_text(
        json.dumps(
            {
                "clusters": [{"name": "c", "cluster": {"server": server}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "c",
            }
        )
    )
    return path


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[ControlPlane, str, Any]]:
    """Every request to the control plane; answered from STATUS and DUMP."""
    seen: list[tuple[ControlPlane, str, Any]] = []

    def get_json(self: ControlPlane, path: str, params: Any = None) -> Any:
        seen.append((self, path, params))
        return STATUS if path == "/status" else DUMP

    monkeypatch.setattr(ControlPlane, "get_json", get_json)
    return seen


def test_the_mode_follows_kubectls_options(tmp_path: Path) -> None:
    assert is_cluster(tmp_path, None, None) is False
    assert is_cluster(None, None, None) is True  # $KUBECONFIG or ~/.kube/config
    assert is_cluster(None, tmp_path / "k", None) is True
    assert is_cluster(None, None, "ctx") is True
    with pytest.raises(typer.BadParameter, match="one or the other"):
        is_cluster(tmp_path, None, "ctx")


@pytest.mark.parametrize(
    "args",
    [
        ["proxy-status", "DIR", "--context", "c"],
        ["proxy-config", "cluster", "client-0", "DIR", "--kubeconfig", "K"],
        ["describe", "web", "DIR", "--kubeconfig", "K"],
    ],
)
def test_a_directory_and_a_cluster_together_is_a_usage_error(
    tmp_path: Path, args: list[str]
) -> None:
    config = kubeconfig(tmp_path / "k")
    argv = [str(tmp_path) if a == "DIR" else str(config) if a == "K" else a for a in args]
    result = runner.invoke(app, argv)
    assert result.exit_code == exitcodes.USAGE
    assert "one or the other" in result.output


def test_a_directory_with_kubeconfig_in_the_environment_stays_local(
    tmp_path: Path, calls: list[Any]
) -> None:
    env = {"KUBECONFIG": str(kubeconfig(tmp_path / "k"))}
    result = runner.invoke(app, ["proxy-status", str(tmp_path)], env=env)
    assert result.exit_code == exitcodes.NOT_RUNNING  # no `plait up` runs there
    assert calls == []


def test_cluster_proxy_status_asks_the_control_plane_in_its_namespace(
    tmp_path: Path, calls: list[Any]
) -> None:
    config = kubeconfig(tmp_path / "k", "https://api.example:6443")
    result = runner.invoke(
        app, ["proxy-status", "--kubeconfig", str(config), "-i", "mesh", "-o", "json"]
    )
    assert result.exit_code == exitcodes.OK, result.output
    out = json.loads(result.output)
    assert out["inSync"] and [p["name"] for p in out["proxies"]] == [PROXY]
    [(cp, path, _)] = calls
    assert (cp.namespace, path, cp.config.cluster.server) == (
        "mesh",
        "/status",
        "https://api.example:6443",
    )
    assert cp.url("/status") == "/api/v1/namespaces/mesh/services/plaitd:15014/proxy/status"


def test_without_a_directory_kubeconfig_comes_from_the_environment(
    tmp_path: Path, calls: list[Any]
) -> None:
    env = {"KUBECONFIG": str(kubeconfig(tmp_path / "k", "https://from-env:6443"))}
    result = runner.invoke(app, ["proxy-status"], env=env)
    assert result.exit_code == exitcodes.OK, result.output
    [(cp, _, _)] = calls
    assert cp.namespace == "istio-system" and cp.config.cluster.server == "https://from-env:6443"


def test_cluster_proxy_config_finds_the_proxy_then_its_dump(
    tmp_path: Path, calls: list[Any]
) -> None:
    config = str(kubeconfig(tmp_path / "k"))
    result = runner.invoke(
        app, ["proxy-config", "clusters", "client-0", "--kubeconfig", config, "-o", "json"]
    )
    assert result.exit_code == exitcodes.OK, result.output
    assert json.loads(result.output)["dynamic_active_clusters"][0]["cluster"]["type"] == "STATIC"
    assert [(p, q) for _, p, q in calls] == [
        ("/status", None),
        ("/debug/config_dump", {"proxyID": PROXY}),
    ]
    unknown = runner.invoke(app, ["proxy-config", "cluster", "nope", "--kubeconfig", config])
    assert unknown.exit_code == exitcodes.USAGE and "no proxy 'nope'" in unknown.output


@pytest.mark.parametrize(
    ("args", "why"),
    [
        (["secret", "client-0"], "Envoy's admin interface"),
        (["bootstrap", "client-0"], "Envoy's admin interface"),
        (["endpoint", "client-0"], "-o json|yaml"),
    ],
)
def test_what_only_envoy_knows_is_refused_for_a_cluster(
    tmp_path: Path, calls: list[Any], args: list[str], why: str
) -> None:
    result = runner.invoke(
        app, ["proxy-config", *args, "--kubeconfig", str(kubeconfig(tmp_path / "k"))]
    )
    assert result.exit_code == exitcodes.USAGE and why in result.output
    assert calls == []


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (
            ControlPlaneNotFoundError("no control plane found at service x/plaitd:15014"),
            exitcodes.NOT_RUNNING,
        ),
        (KubeForbiddenError("the API server refused: forbidden"), exitcodes.FORBIDDEN),
    ],
)
def test_cluster_errors_are_one_line_with_their_exit_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: Exception, code: int
) -> None:
    def get_json(self: ControlPlane, path: str, params: Any = None) -> Any:
        raise error

    monkeypatch.setattr(ControlPlane, "get_json", get_json)
    config = str(kubeconfig(tmp_path / "k"))
    for args in (["proxy-status"], ["proxy-config", "cluster", "client-0"]):
        result = runner.invoke(app, [*args, "--kubeconfig", config])
        assert result.exit_code == code
        assert result.output.strip().count("\n") == 0 and str(error) in result.output


def test_a_missing_kubeconfig_is_a_usage_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["proxy-status", "--kubeconfig", str(tmp_path / "none")])
    assert result.exit_code == exitcodes.USAGE and "does not exist" in result.output


SHOP = Path(__file__).resolve().parents[3] / "examples" / "shop"


def test_cluster_describe_reads_the_cluster_and_its_live_replicas(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cluster's view is the example's (what `cluster_view` would list); the live
    replicas are the proxies of the Service's namespace its selector picks."""
    from plait.analysis import vet
    from plait.cli import analyze
    from plait.sources.directory import DirectorySource

    monkeypatch.setattr(
        analyze, "cluster_view", lambda config: DirectorySource(SHOP, check=vet).load()
    )
    picked = {**STATUS["proxies"][0], "name": "sidecar~reviews-v1-0.default", "namespace": "default",
              "workload": "reviews-v1", "labels": {"app": "reviews", "version": "v1"}}  # fmt: skip
    other_ns = {**picked, "name": "sidecar~reviews-v1-0.other", "namespace": "other"}
    status = {"controlPlane": {}, "proxies": [STATUS["proxies"][0], picked, other_ns]}
    monkeypatch.setattr(ControlPlane, "get_json", lambda self, path, params=None: status)
    config = str(kubeconfig(tmp_path / "k"))
    result = runner.invoke(app, ["describe", "reviews", "--kubeconfig", config, "-o", "json"])
    assert result.exit_code == exitcodes.OK, result.output
    data = json.loads(result.stdout)
    assert data["route"]["clusters"][0]["cluster"].startswith("outbound|8080|v1|reviews")
    assert [p["name"] for p in data["live"]] == ["sidecar~reviews-v1-0.default"]

    def gone(self: ControlPlane, path: str, params: Any = None) -> Any:
        raise ControlPlaneNotFoundError(
            "no control plane found at service istio-system/plaitd:15014"
        )

    monkeypatch.setattr(ControlPlane, "get_json", gone)
    result = runner.invoke(app, ["describe", "reviews", "--kubeconfig", config, "-o", "json"])
    assert result.exit_code == exitcodes.OK  # the description stands without live replicas
    assert "warning: no live replicas: no control plane found" in result.output
