"""Fixtures for mesh e2e tests: one shop mesh per module, diagnostics on failure."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from meshkit import SHOP, Mesh, copy_mesh, processes_under


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    root = copy_mesh(SHOP, tmp_path_factory.mktemp("mesh") / "shop")
    mesh = Mesh(root)
    result = mesh.up()
    try:
        assert result.returncode == 0, (
            f"plait up failed:\n{result.stdout}\n{result.stderr}\n{mesh.diagnostics()}"
        )
        assert mesh.gateway.startswith("http://127.0.0.1:"), result.stdout
        yield mesh
    finally:
        down = mesh.down()
        left = processes_under(root)
        assert down.returncode == 0, down.stderr
        assert not left, f"processes left behind after plait down: {left}"
