"""kubectl's rules for finding the cluster: --kubeconfig, KUBECONFIG (merged, first file
wins), ~/.kube/config, in-cluster; --context picks a context; clear errors otherwise."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from plait.errors import KubeConfigError
from plait.kube import config


def kubeconfig(path: Path, contexts: dict[str, str], current: str | None = None) -> Path:
    data: dict[str, object] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": c, "cluster": {"server": server}} for c, server in contexts.items()],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": c, "context": {"cluster": c, "user": "u"}} for c in contexts],
    }
    if current:
        data["current-context"] = current
    path.write_text(json.dumps(data))
    return path


def test_the_flag_wins_and_context_picks(tmp_path: Path) -> None:
    f = kubeconfig(tmp_path / "a", {"one": "https://one:1", "two": "https://two:2"}, "one")
    env = {"KUBECONFIG": str(tmp_path / "other")}
    assert config.load(f, env=env).cluster.server == "https://one:1"
    assert config.load(f, "two", env=env).cluster.server == "https://two:2"
    with pytest.raises(KubeConfigError, match="three"):
        config.load(f, "three", env=env)


def test_kubeconfig_env_merges_first_file_wins(tmp_path: Path) -> None:
    a = kubeconfig(tmp_path / "a", {"one": "https://a:1"})
    b = kubeconfig(tmp_path / "b", {"one": "https://b:1", "two": "https://b:2"}, "two")
    env = {"KUBECONFIG": f"{tmp_path / 'missing'}:{a}:{b}"}
    assert config.load(env=env).cluster.server == "https://b:2"  # current-context from b
    assert config.load(context="one", env=env).cluster.server == "https://a:1"


def test_missing_everything_says_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(config, "DEFAULT_KUBECONFIG", tmp_path / "none")
    with pytest.raises(KubeConfigError, match="--kubeconfig"):
        config.load(env={})
    with pytest.raises(KubeConfigError, match="does not exist"):
        config.load(tmp_path / "nope", env={})
    with pytest.raises(KubeConfigError, match="current-context"):
        config.load(kubeconfig(tmp_path / "c", {"one": "https://a:1"}), env={})


def test_no_home_directory_falls_through_to_in_cluster(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A container user with neither HOME nor a passwd entry (the chart's uid 1337) has no
    ~/.kube/config: the service account is used, not a crash."""
    monkeypatch.delenv("HOME", raising=False)
    monkeypatch.setattr("pwd.getpwuid", lambda uid: (_ for _ in ()).throw(KeyError(uid)))
    account = tmp_path / "sa"
    account.mkdir()
    (account / "token").write_text("t")
    (account / "ca.crt").write_text("")
    (account / "namespace").write_text("istio-system")
    monkeypatch.setattr(config, "SERVICE_ACCOUNT_DIR", account)
    env = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    for name, value in env.items():  # lightkube reads them from the process's environment
        monkeypatch.setenv(name, value)
    loaded = config.load(env=env)
    assert loaded.cluster.server == "https://10.96.0.1:443"
