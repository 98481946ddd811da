"""A `LocalMesh` over a one-Deployment directory (nothing started), for the runner's and
its background tasks' tests; `set_replicas(n)` edits that Deployment."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from plait.local.runner import LocalMesh
from plait.local.upoptions import UpOptions

DEPLOYMENT = """apiVersion: apps/v1
kind: Deployment
metadata: {{name: a}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: a}}}}
  template:
    metadata: {{labels: {{app: a}}}}
    spec:
      containers: [{{name: a, command: [python3, -m, http.server]}}]
"""


@pytest.fixture
def set_replicas(tmp_path: Path) -> Callable[[int], None]:
    def write(replicas: int) -> None:
        (tmp_path / "a.yaml").write_text(DEPLOYMENT.format(replicas=replicas))

    return write


@pytest.fixture
def mesh(tmp_path: Path, set_replicas: Callable[[int], None]) -> LocalMesh:
    set_replicas(1)
    return LocalMesh(UpOptions(tmp_path), progress=lambda _line: None)
