"""The traffic lab mesh: started once per test module, every process stopped after it.

A failing test prints Envoy's logs and config dumps (meshkit.Mesh.diagnostics).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from labkit import Lab, running_lab


@pytest.fixture(scope="module")
def lab(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """The lab mesh; a module may add files before start with `LAB_FILES = {name: text}`
    (more Services and Deployments only that module needs; scripts live in lab/)."""
    with running_lab(request, tmp_path_factory.mktemp("traffic")) as lab:
        yield lab
