"""Every proxy config a test translates must be consistent (`translate.consistency`).

`checked_configs` wraps `Translator.config_for` for the duration of a test: each config
it returns is checked exactly (no dangling EDS/RDS name, no endpoint set or route table
that nothing names) and recorded. A conftest makes it autouse for a test directory:

    from consistencykit import checked_configs  # noqa: F401  (autouse fixture)
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from plait.model.proxy import Proxy
from plait.translate import consistency
from plait.translate.proxy import Translator
from plait.translate.resource import ProxyConfig


@pytest.fixture(autouse=True)
def checked_configs(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[ProxyConfig]]:
    """The configs translated so far in this test, each already found consistent."""
    checked: list[ProxyConfig] = []
    config_for = Translator.config_for

    def consistent_config_for(self: Translator, proxy: Proxy) -> ProxyConfig:
        config = config_for(self, proxy)
        problems = consistency.consistent(config)
        assert not problems, f"inconsistent config for {proxy.id}: {problems}"
        checked.append(config)
        return config

    monkeypatch.setattr(Translator, "config_for", consistent_config_for)
    yield checked
