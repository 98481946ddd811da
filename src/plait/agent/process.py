"""Process-level helpers: spawning a child, signalling its group, backoff, log tail.

Every child plait starts (Envoy, app replicas, the control plane, bench workers) goes
through `spawn`: its own session (so it is the leader of its own process group, and a
Ctrl-C on the terminal reaches plait only) and the parent-death signal below. Its process
group is the one kill scope: `signal_group` and `terminate` signal the group, so helpers
a child started (a shell script's children) end with it.

Parent death: on Linux the child asks the kernel, between fork and exec, to SIGKILL it
when its parent dies (`prctl(PR_SET_PDEATHSIG, SIGKILL)` through ctypes in a
`preexec_fn`). SIGKILL rather than SIGTERM: with the parent gone nobody can drain
Envoy, and its ports must be free for the next `plait up`. Two caveats of the kernel
interface, both handled or documented here:

- the signal fires when the *thread* that forked the child exits, not the process;
  asyncio forks from the event loop's thread, so that thread must outlive Envoy (it does
  when the loop runs in the main thread, as `asyncio.run` does);
- if the parent died before `prctl` ran, no signal will ever come, so the child checks
  that its parent is still the one that forked it and exits otherwise.

A `preexec_fn` runs Python in the child between fork and exec, which Python's docs call
unsafe when the parent has threads (gRPC's do; it logs "skipping fork() handlers"). The
hook here stays within what is safe there: it calls a libc function resolved beforehand
in the parent and `os.getppid`, holding the GIL, allocating nothing of note.

On other systems there is no equivalent; `preexec_fn` is None and only an orderly
`stop()` ends Envoy.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import sys
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO

PR_SET_PDEATHSIG = 1


def _load_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl: Callable[..., int] = libc.prctl
    except (OSError, AttributeError):
        return None
    return prctl


# Resolved once in the parent: the child, between fork and exec, only calls it.
_PRCTL = _load_prctl()


def die_with_parent_hook() -> Callable[[], None] | None:
    """A `preexec_fn` that makes the child get SIGKILL when this process dies (Linux)."""
    prctl = _PRCTL
    if prctl is None:
        return None
    parent = os.getpid()
    sig = int(signal.SIGKILL)

    def hook() -> None:
        prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)

    return hook


async def spawn(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    stdout: int | IO[bytes] | None = None,
    stderr: int | IO[bytes] | None = None,
) -> asyncio.subprocess.Process:
    """Start `argv` in its own session, dying with this process (see the module docstring).

    stdin is /dev/null. Raises OSError when the program cannot be executed. If the caller
    is cancelled while the child starts, asyncio kills the child: none is left unowned.
    """
    return await asyncio.create_subprocess_exec(
        *argv,
        env=None if env is None else dict(env),
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=stdout,
        stderr=stderr,
        start_new_session=True,
        preexec_fn=die_with_parent_hook(),
    )


def signal_group(proc: asyncio.subprocess.Process, sig: int) -> None:
    """Send `sig` to the process group `proc` leads (a child made by `spawn`).

    Only while `proc` has not been reaped, or just after (the group id is the leader's
    pid, which the kernel does not hand out again while the group has members).
    """
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


async def terminate(proc: asyncio.subprocess.Process, grace: float) -> None:
    """SIGTERM to the group, SIGKILL to it after `grace` seconds; returns once `proc` is
    reaped and its group killed. Cancelled, it still SIGKILLs the group before it returns."""
    try:
        if proc.returncode is None:
            signal_group(proc, signal.SIGTERM)
            try:
                async with asyncio.timeout(grace):
                    await proc.wait()
            except TimeoutError:
                pass
    finally:
        signal_group(proc, signal.SIGKILL)
        await proc.wait()


def backoff_delay(attempt: int, initial_s: float, cap_s: float) -> float:
    """Seconds to wait before restart number `attempt` (0-based) of a crash streak.

    The first restart is immediate (a one-off crash costs nothing), then the wait doubles
    from `initial_s` up to `cap_s`.
    """
    if attempt <= 0:
        return 0.0
    return float(min(cap_s, initial_s * 2 ** (attempt - 1)))


def tail(path: Path, lines: int = 40) -> str:
    """The last `lines` lines of a text file ("" if it does not exist)."""
    try:
        with path.open("r", encoding="utf-8", errors="replace") as f:
            return "".join(deque(f, maxlen=lines))
    except FileNotFoundError:
        return ""
