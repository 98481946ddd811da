"""The mesh directory as a source: what it emits, and which paths it reloads for."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from plait.sources.directory import ConfigView
from plait.sources.events import ConfigChanged, SourceEvent
from plait.sources.meshdir import MeshDirectorySource
from plait.sources.workloads import RegistrySource

SERVICE = """apiVersion: v1
kind: Service
metadata: {{name: {name}}}
spec:
  selector: {{app: {name}}}
  ports: [{{name: http, port: 80}}]
"""


def names(event: SourceEvent) -> list[str]:
    assert isinstance(event, ConfigChanged)
    return sorted(i.resource.metadata.name for i in event.view.resources)


async def next_event(events: asyncio.Queue[SourceEvent]) -> SourceEvent:
    async with asyncio.timeout(10):
        return await events.get()


async def test_it_emits_the_initial_config_then_each_edit(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(SERVICE.format(name="a"))
    source = MeshDirectorySource(tmp_path)
    events: asyncio.Queue[SourceEvent] = asyncio.Queue()
    ready = asyncio.Event()
    task = asyncio.create_task(source.run(events.put_nowait, ready))
    try:
        assert names(await next_event(events)) == ["a"]
        assert ready.is_set()
        (tmp_path / "b.yaml").write_text(SERVICE.format(name="b"))
        while names(event := await next_event(events)) != ["a", "b"]:
            pass  # an event per burst; the last of them has b
        assert names(event) == ["a", "b"]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_an_edit_between_the_first_load_and_the_watch_is_not_missed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a.yaml").write_text(SERVICE.format(name="a"))
    source = MeshDirectorySource(tmp_path)
    real_load = source.loader.load
    loads = 0

    def load() -> ConfigView:
        nonlocal loads
        view = real_load()
        loads += 1
        if loads == 1:  # written after the first read, before watching began
            (tmp_path / "b.yaml").write_text(SERVICE.format(name="b"))
        return view

    monkeypatch.setattr(source.loader, "load", load)
    events: asyncio.Queue[SourceEvent] = asyncio.Queue()
    task = asyncio.create_task(source.run(events.put_nowait, asyncio.Event()))
    try:
        assert names(await next_event(events)) == ["a"]
        assert names(await next_event(events)) == ["a", "b"]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_cancelling_it_ends_it_promptly(tmp_path: Path) -> None:
    source = MeshDirectorySource(tmp_path)
    ready = asyncio.Event()
    task = asyncio.create_task(source.run(lambda _e: None, ready))
    await ready.wait()
    await asyncio.sleep(0.1)  # inside the watch
    task.cancel()
    async with asyncio.timeout(2):
        await asyncio.gather(task, return_exceptions=True)


@pytest.mark.parametrize(
    ("rel", "config", "registry"),
    [
        ("a.yaml", True, False),
        ("sub/c.yml", True, False),
        (".plait/workloads.json", False, True),
        ("README.md", False, False),
        (".plait/state.json", False, False),
        (".plait/workloads.tmp", False, False),
        (".plait/config.yaml", False, False),
        (".git/x.yaml", False, False),
        ("sub/.cache/x.yaml", False, False),
    ],
)
def test_which_paths_each_source_reloads_for(
    tmp_path: Path, rel: str, config: bool, registry: bool
) -> None:
    path = str(tmp_path / rel)
    assert MeshDirectorySource(tmp_path).wants(path) is config
    assert RegistrySource(tmp_path).wants(path) is registry
