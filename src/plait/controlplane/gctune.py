"""Garbage-collector settings for the control-plane process.

The control plane holds a large, long-lived heap (a snapshot, its translated resources,
every stream's state: about a million objects at 1,000 services × 1,000 proxies), and
each change allocates many short-lived containers. With CPython's default thresholds
(700, 10, 10) the collector ran about a hundred young and ten middle collections per
change there, and a full collection now and then that took 0.4-0.9 s, stalling every
stream (bench/scale.py: 0.3 s of GC per VirtualService edit on average). With
(50,000, 50, 100) no collection ran during a change at all and the peak resident memory
stayed within the run-to-run spread. Reference counting frees nearly everything anyway;
the collector is only needed for cycles, which the control plane makes few of.
"""

from __future__ import annotations

import gc

THRESHOLDS = (50_000, 50, 100)


def tune() -> None:
    """Apply `THRESHOLDS` to this process."""
    gc.set_threshold(*THRESHOLDS)
