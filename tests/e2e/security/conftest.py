"""Security e2e tests run on the traffic lab mesh (tests/e2e/traffic/lab): one mesh per
test module, config applied per test. A failing test prints Envoy's logs and config dumps."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent.parent / "traffic"))

from labkit import Lab, running_lab  # noqa: E402


@pytest.fixture(scope="module")
def lab(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """The lab mesh; a module may add files (`LAB_FILES`) and `plait up` flags (`UP_ARGS`,
    or `up_args(where)` to make files under the test's directory first)."""
    where = tmp_path_factory.mktemp("security")
    make_args = getattr(request.module, "up_args", None)
    args = tuple(make_args(where) if make_args else getattr(request.module, "UP_ARGS", ()))
    with running_lab(request, where, *args) as lab:
        yield lab
