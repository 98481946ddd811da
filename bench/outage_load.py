"""Open-loop load for the outage scenario, and what it measured, second by second.

Open loop: each stream sends its requests at fixed instants (``start + k / rps``) whether
or not earlier ones have been answered, as independent customers do. A closed loop (N
clients, each waiting for its answer) would slow down with the system under test and hide
the queue that causes the outage. Every request has its own connection to the gateway
when needed (no client-side connection limit), and a client timeout: a request not
answered within ``timeout_s`` counts as an error, with ``timeout_s`` as its latency
(a lower bound of what the customer would have waited).

Meanwhile a sampler polls the services' own ``GET /stats`` (queue, workers, memory); each
sample also holds ``in_flight``, the requests sent and not yet answered: the pile-up as
seen from outside.
Results are bucketed per second of *send* time: the latency of a second is what the
requests sent in that second experienced.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import aiohttp


@dataclass(frozen=True)
class Stream:
    """``rps`` requests per second to ``path`` from ``start_s`` until ``stop_s``."""

    name: str
    path: str
    rps: float
    start_s: float
    stop_s: float


@dataclass(frozen=True)
class Outcome:
    stream: str
    sent_s: float  # since the load started
    seconds: float
    status: int | None  # None: no HTTP answer (client timeout, connection error)
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status == 200


@dataclass
class Run:
    duration_s: float
    outcomes: list[Outcome] = field(default_factory=list)
    samples: list[dict[str, Any]] = field(default_factory=list)  # {"t": s, ...stats}

    def to_json(self) -> dict[str, Any]:
        return {
            "duration_s": self.duration_s,
            "outcomes": [asdict(o) for o in self.outcomes],
            "samples": self.samples,
        }


Sampler = Callable[[aiohttp.ClientSession], Awaitable[dict[str, Any]]]


async def drive(
    base_url: str,
    streams: Sequence[Stream],
    *,
    timeout_s: float,
    sampler: Sampler | None = None,
    sample_every_s: float = 0.5,
) -> Run:
    """Send every stream's requests, sample meanwhile, and wait for the last answer (at
    most ``timeout_s`` after the last send)."""
    duration = max(s.stop_s for s in streams)
    run = Run(duration)
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    async with aiohttp.ClientSession(connector=connector) as session:
        start = time.monotonic()
        pending: set[asyncio.Task[None]] = set()

        async def one(stream: Stream, sent: float) -> None:
            t0 = time.monotonic()
            status: int | None = None
            error = ""
            try:
                async with asyncio.timeout(timeout_s):
                    async with session.get(base_url + stream.path) as resp:
                        await resp.read()
                        status = resp.status
            except TimeoutError:
                error = "timeout"
            except (aiohttp.ClientError, OSError) as exc:
                error = type(exc).__name__
            seconds = timeout_s if error == "timeout" else time.monotonic() - t0
            run.outcomes.append(Outcome(stream.name, sent, seconds, status, error))

        async def emit(stream: Stream) -> None:
            count = math.floor((stream.stop_s - stream.start_s) * stream.rps)
            for k in range(count):
                at = stream.start_s + k / stream.rps
                delay = start + at - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                task = requests.create_task(one(stream, at))
                pending.add(task)
                task.add_done_callback(pending.discard)

        async def sample() -> None:
            assert sampler is not None
            while True:
                t = time.monotonic() - start
                with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError, ValueError):
                    stats = await sampler(session)
                    run.samples.append({"t": round(t, 3), "in_flight": len(pending), **stats})
                await asyncio.sleep(max(0.0, sample_every_s - (time.monotonic() - start - t)))

        # Every request is a task of `requests`; the sampler runs beside them until the
        # last answer. An unexpected error in either ends the run with that error.
        async with asyncio.TaskGroup() as tg:
            sampling = tg.create_task(sample()) if sampler is not None else None
            async with asyncio.TaskGroup() as requests:
                for s in streams:
                    requests.create_task(emit(s))
            if sampling is not None:
                sampling.cancel()
    run.outcomes.sort(key=lambda o: o.sent_s)
    return run


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 1)


def summarize(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    """Count, error rate, latency percentiles (all requests; timeouts count as
    ``timeout_s``) and the p99 latency of the errors alone."""
    seconds = [o.seconds for o in outcomes]
    errors = [o.seconds for o in outcomes if not o.ok]
    return {
        "requests": len(outcomes),
        "errors": len(errors),
        "error_rate": round(len(errors) / len(outcomes), 4) if outcomes else None,
        "timeouts": sum(1 for o in outcomes if o.error == "timeout"),
        "p50_ms": _ms(percentile(seconds, 50)),
        "p99_ms": _ms(percentile(seconds, 99)),
        "max_ms": _ms(max(seconds, default=None)),
        "error_p99_ms": _ms(percentile(errors, 99)),
    }


def window(run: Run, stream: str, start_s: float, stop_s: float) -> list[Outcome]:
    return [o for o in run.outcomes if o.stream == stream and start_s <= o.sent_s < stop_s]


def per_second(run: Run, stream: str) -> list[dict[str, Any]]:
    """:func:`summarize` for each second of send time (seconds without requests: none)."""
    out = []
    for second in range(math.ceil(run.duration_s)):
        outcomes = window(run, stream, second, second + 1)
        if outcomes:
            out.append({"t": second, **summarize(outcomes)})
    return out
