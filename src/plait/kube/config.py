"""Which cluster to talk to, by kubectl's rules, and an HTTP client for it.

Order (kubectl's and client-go's): `--kubeconfig FILE`; else `$KUBECONFIG` (a list of
files joined by ':' merged as kubectl merges them: the first file that sets a value
wins); else `~/.kube/config`; else, inside a pod, the in-cluster service account
(`KUBERNETES_SERVICE_HOST` and the mounted token). `--context` picks a context from the
kubeconfig (default: its `current-context`). Authentication, TLS and token refresh are
lightkube's.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx2 as httpx
import yaml
from lightkube.config.client_adapter import AsyncClient, ConnectionParams
from lightkube.config.kubeconfig import KubeConfig as LightkubeConfig
from lightkube.config.kubeconfig import SingleConfig
from lightkube.core.exceptions import ConfigError

from plait.errors import KubeConfigError

DEFAULT_KUBECONFIG = Path("~/.kube/config")
SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


def _merge(files: list[Path]) -> dict[str, Any]:
    """kubectl's merge of several kubeconfig files: named entries and single values from
    the first file that has them."""
    merged: dict[str, Any] = {"clusters": [], "users": [], "contexts": []}
    seen: dict[str, set[str]] = {k: set() for k in ("clusters", "users", "contexts")}
    for file in files:
        try:
            data = yaml.safe_load(file.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise KubeConfigError(f"cannot read kubeconfig {file}: {exc}") from exc
        if not isinstance(data, dict):
            raise KubeConfigError(f"kubeconfig {file} is not a mapping")
        for section in ("clusters", "users", "contexts"):
            for entry in data.get(section) or []:
                name = entry.get("name") if isinstance(entry, dict) else None
                if isinstance(name, str) and name not in seen[section]:
                    seen[section].add(name)
                    merged[section].append(_absolute(entry, file.parent))
        if "current-context" not in merged and data.get("current-context"):
            merged["current-context"] = data["current-context"]
    return merged


def _absolute(entry: dict[str, Any], base: Path) -> dict[str, Any]:
    """File references in a kubeconfig are relative to the file that holds them."""
    out = dict(entry)
    for section in ("cluster", "user"):
        inner = entry.get(section)
        if isinstance(inner, dict):
            fixed = dict(inner)
            for key in ("certificate-authority", "client-certificate", "client-key", "tokenFile"):
                value = fixed.get(key)
                if isinstance(value, str) and not Path(value).is_absolute():
                    fixed[key] = str(base / value)
            out[section] = fixed
    return out


def _default_kubeconfig() -> Path | None:
    """~/.kube/config if it exists; None also without a home directory (a container user
    with neither HOME nor a passwd entry, as the chart's uid 1337 may be)."""
    try:
        path = DEFAULT_KUBECONFIG.expanduser()
    except RuntimeError:  # "Could not determine home directory."
        return None
    return path if path.is_file() else None


def load(
    kubeconfig: Path | None = None,
    context: str | None = None,
    env: Mapping[str, str] = os.environ,
) -> SingleConfig:
    """The cluster, user and namespace to use (see the module docstring for the order)."""
    try:
        if kubeconfig is not None:
            if not kubeconfig.expanduser().is_file():
                raise KubeConfigError(f"kubeconfig {kubeconfig} does not exist")
            config = LightkubeConfig.from_dict(_merge([kubeconfig.expanduser()]), fname=kubeconfig)
        elif env.get("KUBECONFIG"):
            files = [Path(p).expanduser() for p in env["KUBECONFIG"].split(os.pathsep) if p]
            existing = [f for f in files if f.is_file()]
            if not existing:
                raise KubeConfigError(
                    f"none of the files in KUBECONFIG exists: {env['KUBECONFIG']}"
                )
            config = LightkubeConfig.from_dict(_merge(existing), fname=existing[0])
        elif (path := _default_kubeconfig()) is not None:
            config = LightkubeConfig.from_dict(_merge([path]), fname=path)
        elif env.get("KUBERNETES_SERVICE_HOST"):
            if context is not None:
                raise KubeConfigError("--context needs a kubeconfig; none was found")
            config = LightkubeConfig.from_service_account(SERVICE_ACCOUNT_DIR)
        else:
            raise KubeConfigError(
                "no kubeconfig: pass --kubeconfig, set KUBECONFIG, create ~/.kube/config, "
                "or run inside a pod"
            )
        if context is None and config.current_context is None:
            raise KubeConfigError("kubeconfig has no current-context; pass --context")
        single = config.get(context)
    except ConfigError as exc:
        raise KubeConfigError(f"kubeconfig: {exc}") from exc
    except KeyError as exc:
        raise KubeConfigError(f"kubeconfig: context, cluster or user {exc} not found") from exc
    if single is None:
        raise KubeConfigError("kubeconfig has no current-context; pass --context")
    return single


def http_client(config: SingleConfig, timeout: float = 10.0) -> httpx.AsyncClient:
    """An HTTP client for the API server (base URL, TLS and credentials from `config`)."""
    return AsyncClient(config, ConnectionParams(timeout=httpx.Timeout(timeout), trust_env=False))
