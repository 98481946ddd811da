"""The pipeline with an in-memory source: debounce, store, build, publish — no files, no
network. The build is a stand-in that records what it was given."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from plait.aio import Backoff, Stopped, until
from plait.controlplane.pipeline import Debounce, Pipeline, Store
from plait.model.labels import Labels
from plait.model.registry import PortMap, WorkloadInstance
from plait.model.snapshot import MeshSnapshot, build_snapshot
from plait.sources.directory import ConfigView
from plait.sources.events import ConfigChanged, Emit, SourceError, SourceEvent, WorkloadsChanged


def instance(n: int) -> WorkloadInstance:
    return WorkloadInstance(
        f"a-{n}",
        "a",
        "default",
        Labels.of({"app": "a"}),
        "default",
        "127.0.0.1",
        PortMap.all_to(20000 + n),
    )


class FakeSource:
    """Emits what the test puts in; `fail` makes its next run raise."""

    def __init__(self, name: str = "fake", initial: tuple[SourceEvent, ...] = ()) -> None:
        self._name = name
        self.initial = initial
        self.queue: asyncio.Queue[SourceEvent] = asyncio.Queue()
        self.fail: list[Exception] = []
        self.runs = 0

    @property
    def name(self) -> str:
        return self._name

    async def run(self, emit: Emit, ready: asyncio.Event) -> None:
        self.runs += 1
        if self.fail:
            raise self.fail.pop(0)
        for event in self.initial:
            emit(event)
        ready.set()
        while True:
            emit(await self.queue.get())


class Recorder:
    """A build that records the instances of each store it saw."""

    def __init__(self) -> None:
        self.builds: list[tuple[str, ...]] = []
        self.raise_next: Exception | None = None

    def __call__(self, store: Store) -> MeshSnapshot:
        if self.raise_next is not None:
            exc, self.raise_next = self.raise_next, None
            raise exc
        self.builds.append(tuple(i.name for i in store.instances))
        return build_snapshot(store.config.resources, store.instances, len(self.builds))


class Published:
    def __init__(self) -> None:
        self.snapshots: list[MeshSnapshot] = []
        self.changed = asyncio.Condition()

    async def __call__(self, snapshot: MeshSnapshot) -> int:
        async with self.changed:
            self.snapshots.append(snapshot)
            self.changed.notify_all()
        return len(self.snapshots)

    async def wait(self, count: int) -> None:
        async with asyncio.timeout(5), self.changed:
            await self.changed.wait_for(lambda: len(self.snapshots) >= count)


EMPTY = ConfigView((), (), ())


Running = tuple[Pipeline, FakeSource, Recorder, Published]


@contextlib.asynccontextmanager
async def running() -> AsyncIterator[Running]:
    """A started pipeline publishing into `Published` (in the test's own task: a task
    group must be entered and left by the same task)."""
    source = FakeSource(
        initial=(ConfigChanged("fake", EMPTY), WorkloadsChanged("fake", (instance(0),)))
    )
    build, published = Recorder(), Published()
    pipeline = Pipeline([source], build, Debounce(step_s=0.05, max_s=0.5), Backoff(first=0.01))
    stop = asyncio.Event()
    try:
        async with asyncio.TaskGroup() as tg:
            first = await pipeline.start(tg)
            assert first.version == 1
            tg.create_task(pipeline.run(published))
            tg.create_task(until(stop))
            yield pipeline, source, build, published
            stop.set()
    except* Stopped:
        pass


async def test_start_builds_the_first_snapshot_from_every_source_s_initial_state() -> None:
    async with running() as (pipeline, _source, build, published):
        assert build.builds == [("a-0",)]
        assert published.snapshots == []  # the first snapshot is the owner's, not published


async def test_a_burst_of_events_is_one_build_and_one_publish() -> None:
    async with running() as (_pipeline, source, build, published):
        for n in range(1, 6):  # each replaces the last: only the newest counts
            source.queue.put_nowait(
                WorkloadsChanged("fake", tuple(instance(i) for i in range(n + 1)))
            )
        await published.wait(1)
        await asyncio.sleep(0.2)  # a second publish would come within a debounce step
        assert build.builds == [("a-0",), ("a-0", "a-1", "a-2", "a-3", "a-4", "a-5")]
        assert [s.version for s in published.snapshots] == [2]  # the second build


async def test_events_that_change_no_input_build_nothing() -> None:
    async with running() as (pipeline, source, build, published):
        source.queue.put_nowait(WorkloadsChanged("fake", (instance(0),)))  # the same instances
        source.queue.put_nowait(SourceError("fake", "cannot read"))
        async with asyncio.timeout(5):
            while "fake" not in pipeline.store.errors:
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)
        assert build.builds == [("a-0",)]
        assert published.snapshots == []
        assert pipeline.store.errors == {"fake": "cannot read"}
        source.queue.put_nowait(SourceError("fake", None))
        source.queue.put_nowait(WorkloadsChanged("fake", (instance(1),)))
        await published.wait(1)
        assert pipeline.store.errors == {}


async def test_a_failing_build_keeps_the_last_snapshot_and_says_why() -> None:
    async with running() as (pipeline, source, build, published):
        build.raise_next = RuntimeError("bug in snapshot building")
        source.queue.put_nowait(WorkloadsChanged("fake", (instance(1),)))
        async with asyncio.timeout(5):
            while pipeline.internal_error is None:
                await asyncio.sleep(0.01)
        assert "bug in snapshot building" in pipeline.internal_error
        assert published.snapshots == []
        source.queue.put_nowait(WorkloadsChanged("fake", (instance(2),)))
        await published.wait(1)
        assert pipeline.internal_error is None
        assert build.builds[-1] == ("a-2",)


async def test_a_failing_source_is_shown_and_restarted() -> None:
    source = FakeSource(initial=(WorkloadsChanged("fake", (instance(0),)),))
    source.fail = [OSError("inotify limit reached"), OSError("inotify limit reached")]
    build, published = Recorder(), Published()
    pipeline = Pipeline([source], build, Debounce(step_s=0.01), Backoff(first=0.05))
    stop = asyncio.Event()
    try:
        async with asyncio.TaskGroup() as tg:
            await pipeline.start(tg)  # the failure does not hold the start back
            assert "inotify limit reached" in pipeline.problems["fake"]
            tg.create_task(pipeline.run(published))
            tg.create_task(until(stop))
            await published.wait(1)  # the third run emits its initial state
            assert source.runs == 3
            assert pipeline.problems == {}
            assert build.builds == [(), ("a-0",)]  # first: nothing yet; then its state
            stop.set()
    except* Stopped:
        pass


async def test_a_steady_stream_of_events_still_publishes_every_max_s() -> None:
    """Debounce waits for a quiet `step_s`, but never longer than `max_s`."""
    source = FakeSource(initial=(WorkloadsChanged("fake", ()),))
    build, published = Recorder(), Published()
    pipeline = Pipeline([source], build, Debounce(step_s=0.2, max_s=0.3))
    stop = asyncio.Event()
    try:
        async with asyncio.TaskGroup() as tg:
            await pipeline.start(tg)
            tg.create_task(pipeline.run(published))
            tg.create_task(until(stop))
            loop = asyncio.get_running_loop()
            began, n = loop.time(), 0
            while not published.snapshots:  # an event every 50 ms: never a quiet 200 ms
                n += 1
                source.queue.put_nowait(WorkloadsChanged("fake", (instance(n),)))
                await asyncio.sleep(0.05)
                assert loop.time() - began < 5, "no publish while events kept coming"
            assert n < 20  # it came after about max_s, not after the stream
            stop.set()
    except* Stopped:
        pass


async def _publish_delay(events: list[SourceEvent], debounce: Debounce) -> float:
    """Seconds from the first of a steady stream of events (one every 50 ms, never a
    quiet `step_s`) to the publish; `events[0]` starts the burst, the rest repeat."""
    source = FakeSource(initial=(ConfigChanged("fake", EMPTY), WorkloadsChanged("fake", ())))
    build, published = Recorder(), Published()
    pipeline = Pipeline([source], build, debounce)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.TaskGroup() as tg:
            await pipeline.start(tg)
            tg.create_task(pipeline.run(published))
            tg.create_task(until(stop))
            began, n = loop.time(), 0
            source.queue.put_nowait(events[0])
            while not published.snapshots:
                n += 1
                source.queue.put_nowait(WorkloadsChanged("fake", (instance(n),)))
                await asyncio.sleep(0.05)
                assert loop.time() - began < 10, "no publish while events kept coming"
            stop.set()
    except* Stopped:
        pass
    return loop.time() - began


async def test_an_endpoint_only_burst_has_the_shorter_cap() -> None:
    debounce = Debounce(step_s=0.5, max_s=2.0, endpoints_max_s=0.2)
    endpoints = await _publish_delay([WorkloadsChanged("fake", (instance(0),))], debounce)
    assert endpoints < 1.5  # about endpoints_max_s (a loaded machine may add some)
    view = ConfigView((), (), ())  # a new view object: a config change
    mixed = await _publish_delay([ConfigChanged("fake", view)], debounce)
    assert mixed >= 1.9  # a config event in the burst: max_s, never less
