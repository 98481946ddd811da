"""The traffic lab mesh: started once per test module, every process stopped after it.

A failing test prints Envoy's logs and config dumps (meshkit.Mesh.diagnostics).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from labkit import LAB, Lab
from meshkit import Mesh, copy_mesh, processes_under


@pytest.fixture(scope="module")
def lab(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """The lab mesh; a module may add files before start with `LAB_FILES = {name: text}`
    (more Services and Deployments only that module needs; scripts live in lab/)."""
    root = copy_mesh(LAB, tmp_path_factory.mktemp("traffic") / "lab")
    for name, text in getattr(request.module, "LAB_FILES", {}).items():
        (root / name).write_text(text)
    mesh = Mesh(root)
    result = mesh.up()
    try:
        assert result.returncode == 0, (
            f"plait up failed:\n{result.stdout}\n{result.stderr}\n{mesh.diagnostics()}"
        )
        yield Lab(mesh)
    finally:
        down = mesh.down()
        left = processes_under(root)
        assert down.returncode == 0, down.stderr
        assert not left, f"processes left behind after plait down: {left}"


@pytest.fixture(autouse=True)
def _diagnose(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed and "lab" in request.fixturenames:
        lab: Lab = request.getfixturevalue("lab")
        print(lab.mesh.diagnostics())
