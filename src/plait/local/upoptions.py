"""What `plait up` is asked for: read by the CLI (foreground, and `--detach`, which hands
it on to a child `plait up`) and by the local runner."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class UpOptions:
    root: Path
    gateway_port: int = 8080
    ready_timeout_s: float = 60.0
    cert_ttl: str = "24h"  # workload certificates' lifetime
    ca_dir: Path | None = None  # a plugged-in CA; None: plait's own in .plait/ca
    transparent: bool = False  # each replica in its own pod netns, traffic captured (root)
