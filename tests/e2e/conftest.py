"""Shared by every e2e directory: `meshkit` is importable from here (pytest puts this
directory on sys.path), every test here is marked `e2e`, and each test item keeps its
reports (`item.rep_call`), so that a failed test that used a mesh prints the mesh's
Envoy logs and config dumps (`_diagnose`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).parent
MESH_FIXTURES = ("shop", "lab")
"""Fixtures whose value is a running mesh with `diagnostics()` (meshkit.Mesh, labkit.Lab);
module-scoped, so the mesh still runs when a failed test's teardown asks."""


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    rep = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, f"rep_{rep.when}", rep)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).is_relative_to(HERE):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(autouse=True)
def _diagnose(request: pytest.FixtureRequest) -> Iterator[None]:
    """Print Envoy logs and config dumps when a test that uses a mesh fails."""
    yield
    rep = getattr(request.node, "rep_call", None)
    if rep is None or not rep.failed:
        return
    for name in MESH_FIXTURES:
        if name in request.fixturenames:
            print(request.getfixturevalue(name).diagnostics())
