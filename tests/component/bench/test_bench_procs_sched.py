"""The simulated proxies' scheduling policy: a program started under `with_sched("batch")`
runs SCHED_BATCH in every thread, the ones it starts later included."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # bench/ is a top-level package

from bench import procs  # noqa: E402

# Prints the policy of its main thread, then of a thread it starts (0: the calling thread).
PROGRAM = """
import os, threading
print(os.sched_getscheduler(0))
t = threading.Thread(target=lambda: print(os.sched_getscheduler(0)))
t.start(); t.join()
"""


def policies(sched: str) -> list[int]:
    argv = procs.with_sched([sys.executable, "-c", PROGRAM], sched)
    out = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=True)
    return [int(line) for line in out.stdout.split()]


@pytest.mark.parametrize(
    ("sched", "policy"), [("batch", os.SCHED_BATCH), ("normal", os.SCHED_OTHER)]
)
def test_every_thread_runs_under_the_policy(sched: str, policy: int) -> None:
    assert os.sched_getscheduler(0) == os.SCHED_OTHER  # (not inherited from the tests)
    assert policies(sched) == [policy, policy]
