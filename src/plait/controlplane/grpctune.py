"""gRPC's I/O settings for the control-plane process, applied before gRPC loads.

Since grpcio 1.80, Python's gRPC moves every connection's reads and writes to
EventEngine threads (the `event_engine_*` experiments, on by default): each message
crosses threads (futex wake-ups, context switches) on its way to or from the asyncio
loop. An xDS server writes one small response to each of many streams at once and reads
as many ACKs back, which is that path's worst case. With those experiments off, the
control plane's connections run on gRPC's epoll1 I/O manager, as before 1.80. Measured
at 1,000 services x 1,000 proxies, an endpoint change, runs alternating with gRPC's
defaults (`docs/benchmarks.md`): the event loop's own CPU did not change, the process's
system CPU fell by about a third, and the change's p99 was lower in every pair (median
186 against 208 ms with delta clients in `bench.run --only scale`).

gRPC reads `GRPC_EXPERIMENTS` once, when its module is imported: `tune()` must run
before anything imports `grpc` (the `controlplane` and `discovery` commands call it
first). An operator's own `GRPC_EXPERIMENTS`, even empty (gRPC's defaults), is kept.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping

log = logging.getLogger(__name__)

VARIABLE = "GRPC_EXPERIMENTS"
EXPERIMENTS = "-event_engine_listener,-event_engine_for_all_other_endpoints,-event_engine_client"
"""Accepted and dialled connections on gRPC's I/O manager, not on EventEngine threads."""


def environ(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """A copy of `base` (default: this process's environment) with the control plane's
    `GRPC_EXPERIMENTS`, unless `base` sets its own: for a control plane started as a
    child process."""
    env = dict(os.environ if base is None else base)
    env.setdefault(VARIABLE, EXPERIMENTS)
    return env


def tune() -> bool:
    """Give this process the control plane's `GRPC_EXPERIMENTS` (unless already set);
    False, with a warning, when gRPC is already loaded and so can no longer read it."""
    if "grpc" in sys.modules:
        log.warning(
            "gRPC was loaded before its settings were applied; %s stays %r",
            VARIABLE,
            os.environ.get(VARIABLE, ""),
        )
        return False
    os.environ.setdefault(VARIABLE, EXPERIMENTS)
    return True
