"""The machine a benchmark ran on: CPU, cores, memory, kernel, and the versions involved."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from plait.agent.envoy import find_envoy


def _first(path: str, key: str) -> str:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(key):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def _run(*cmd: str) -> str:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return (done.stdout or done.stderr).strip()


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return platform.system()


def envoy_version() -> str:
    """`1.40.0/Clean/RELEASE/BoringSSL` from `envoy --version`."""
    out = _run(str(find_envoy()), "--version")
    return out.rsplit("version:", 1)[-1].strip().split("/", 1)[-1] if out else "unknown"


def wrk_version() -> str:
    out = _run("wrk", "-v")
    return out.splitlines()[0].split("[", 1)[0].strip() if out else "not installed"


def describe() -> dict[str, Any]:
    """Everything worth printing above a table of results."""
    mem_kb = _first("/proc/meminfo", "MemTotal").split()[0]
    mem_gib = f"{int(mem_kb) / 2**20:.1f} GiB" if mem_kb.isdigit() else "unknown"
    repo = Path(__file__).resolve().parent.parent
    commit = _run("git", "-C", str(repo), "describe", "--always", "--dirty")
    return {
        "cpu": _first("/proc/cpuinfo", "model name"),
        "cores": os.cpu_count(),
        "memory": mem_gib,
        "kernel": platform.release(),
        "os": _os_name(),
        "virtualization": _run("systemd-detect-virt") or "unknown",
        "python": sys.version.split()[0],
        "envoy": envoy_version(),
        "wrk": wrk_version(),
        "plait_commit": commit,
    }


def markdown(info: dict[str, Any]) -> str:
    rows = [
        ("CPU", f"{info['cpu']}, {info['cores']} cores"),
        ("Memory", info["memory"]),
        ("OS / kernel", f"{info['os']}, Linux {info['kernel']} ({info['virtualization']})"),
        ("Envoy", info["envoy"]),
        ("Python", info["python"]),
        ("Load generator", info["wrk"]),
        ("plait commit", info["plait_commit"]),
    ]
    return "\n".join(["| | |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)])
