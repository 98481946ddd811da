"""Shared by every e2e directory: `meshkit` (and the traffic lab's `labkit`) are
importable from here, every test here is marked `e2e`, `lab` is the traffic lab mesh for
any module that asks for it, and each test item keeps its reports (`item.rep_call`), so
that a failed test that used a mesh prints the mesh's Envoy logs and config dumps
(`_diagnose`)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE / "traffic"))

from labkit import Lab, running_lab  # noqa: E402

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


@pytest.fixture(scope="module")
def lab(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """The traffic lab mesh (tests/e2e/traffic/lab), one per test module. A module may add
    files before the start with `LAB_FILES = {name: text}` (scripts live in lab/), and
    `plait up` flags with `UP_ARGS`, or `up_args(where)` to make files under the test's
    directory first."""
    where = tmp_path_factory.mktemp(Path(str(request.path)).parent.name)
    make_args = getattr(request.module, "up_args", None)
    args = tuple(make_args(where) if make_args else getattr(request.module, "UP_ARGS", ()))
    with running_lab(request, where, *args) as running:
        yield running
