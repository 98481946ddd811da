"""Instructions per process and thread, counted by valgrind's callgrind (`bench.pathcost`
`--callgrind`): a figure a loaded machine does not change, unlike CPU time."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from bench.procs import ensure_tool


class Callgrind:
    """Envoys run under `valgrind --tool=callgrind`: user-space instructions counted per
    process between two points in time (`callgrind_control`), independent of what else
    runs on the machine — unlike CPU time, which a loaded machine inflates."""

    def __init__(self, out_dir: Path, keep: Path | None = None) -> None:
        ensure_tool("valgrind")  # and callgrind_control, from the same Debian package
        self.out_dir = out_dir
        self.keep = keep  # where to copy every dump, for callgrind_annotate

    @property
    def wrapper(self) -> tuple[str, ...]:
        out = self.out_dir / "cg.%p.out"
        return (
            "valgrind",
            "--tool=callgrind",
            "--separate-threads=yes",  # a file per thread: the main thread's work apart
            f"--callgrind-out-file={out}",
        )

    async def _control(self, flag: str, pid: int) -> None:
        proc = await asyncio.create_subprocess_exec(
            "callgrind_control", flag, str(pid), stdout=asyncio.subprocess.DEVNULL
        )
        if await proc.wait() != 0:
            raise RuntimeError(f"callgrind_control {flag} {pid} failed")

    async def zero(self, pid: int) -> None:
        await self._control("-z", pid)

    async def dump(self, pid: int, label: str = "") -> dict[int, int]:
        """Instructions since the last zero or dump (a dump also zeroes), by thread
        (`MAIN_THREAD` is Envoy's main thread; the others its worker, file flush, …)."""
        seen = set(self.out_dir.glob(f"cg.{pid}.out.*"))
        await self._control("-d", pid)
        done: dict[Path, int] = {}
        for _ in range(600):
            new = set(self.out_dir.glob(f"cg.{pid}.out.*")) - seen
            for path in new - set(done):
                text = path.read_text()
                if "\ntotals:" in text:  # the file's last line: written whole
                    done[path] = int(text.split("\nsummary:", 1)[1].split()[0])
            if done and set(done) == new:
                await asyncio.sleep(0.2)  # one file per thread: all of this dump's?
                if set(self.out_dir.glob(f"cg.{pid}.out.*")) - seen == new:
                    break
            await asyncio.sleep(0.1)
        else:
            raise RuntimeError(f"no callgrind dump from {pid}")
        if self.keep is not None:
            self.keep.mkdir(parents=True, exist_ok=True)
            for path in done:
                shutil.copy(path, self.keep / f"{label}{path.name}")
        return {int(path.name.rsplit("-", 1)[1]): n for path, n in done.items()}


MAIN_THREAD = 1  # callgrind numbers threads from 1, in order of creation


def worker_instructions(threads: dict[int, int]) -> int:
    return sum(n for thread, n in threads.items() if thread != MAIN_THREAD)
