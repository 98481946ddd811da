"""Reading a growing log file by byte offset: each call returns the complete lines
written since the last one; a rotated (new inode) or truncated file starts again at 0."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Tail:
    """The complete lines appended to one file since the last `lines()` call."""

    path: Path
    offset: int = 0
    _partial: bytes = b""
    _inode: int | None = field(default=None, repr=False)

    def skip_to_end(self) -> None:
        try:
            st = self.path.stat()
        except OSError:
            return
        self.offset, self._inode, self._partial = st.st_size, st.st_ino, b""

    def lines(self) -> list[str]:
        try:
            st = self.path.stat()
        except OSError:
            return []  # not written yet (a proxy that served no request)
        if st.st_ino != self._inode or st.st_size < self.offset:
            self.offset, self._partial, self._inode = 0, b"", st.st_ino  # new or truncated
        if st.st_size == self.offset:
            return []
        with self.path.open("rb") as f:
            f.seek(self.offset)
            data = f.read(st.st_size - self.offset)
        self.offset += len(data)
        *complete, self._partial = (self._partial + data).split(b"\n")
        return [line.decode(errors="replace") for line in complete if line.strip()]
