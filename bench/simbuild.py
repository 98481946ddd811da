"""The Go simulated proxies (`bench/simgo`), built once per source and Go version.

`simgo()` is the binary's path: `~/.cache/plait/bench/simgo-<digest>` (or under
`$XDG_CACHE_HOME`), where the digest covers the module's sources (`*.go`, `go.mod`,
`go.sum`) and the Go version, so an edit or a new Go builds it again (and the earlier
build is removed) and nothing is built inside the repo. The build takes the pinned
modules from the Go module proxy (`-mod=readonly`: go.sum decides), as
`testing/k8s/build.sh` does for Kubernetes; about half a minute cold on this machine.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

SOURCE = Path(__file__).resolve().parent / "simgo"


def go_command() -> str:
    found = shutil.which("go") or "/usr/local/go/bin/go"
    if not Path(found).exists():
        raise RuntimeError("the Go simulated proxies need Go (`go` on PATH): use --sim python")
    return found


def _digest(go: str) -> str:
    h = hashlib.sha256()
    version = subprocess.run([go, "env", "GOVERSION"], capture_output=True, text=True, check=True)
    h.update(version.stdout.encode())
    for path in sorted(p for p in SOURCE.iterdir() if p.suffix in (".go", ".mod", ".sum")):
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def simgo() -> str:
    """The built binary's path, building it when missing (progress on stderr)."""
    go = go_command()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "plait" / "bench"
    out = cache / f"simgo-{_digest(go)}"
    if out.exists():
        return str(out)
    cache.mkdir(parents=True, exist_ok=True)
    print(f"building the Go simulated proxies ({SOURCE}) into {out}", file=sys.stderr, flush=True)
    tmp = out.with_suffix(f".tmp{os.getpid()}")
    flags = " ".join(filter(None, [os.environ.get("GOFLAGS"), "-modcacherw", "-mod=readonly"]))
    env = {**os.environ, "CGO_ENABLED": "0", "GOTOOLCHAIN": "local", "GOFLAGS": flags}
    done = subprocess.run(
        [go, "build", "-trimpath", "-o", str(tmp), "."],
        cwd=SOURCE,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise RuntimeError(f"building {SOURCE} failed:\n{done.stderr[-3000:]}")
    tmp.rename(out)
    for old in cache.glob("simgo-*"):  # builds of earlier sources
        if old != out:
            old.unlink(missing_ok=True)
    return str(out)
