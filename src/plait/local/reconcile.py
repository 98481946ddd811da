"""Which replicas to stop and start when the Deployments in the mesh directory change (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from plait.local.plan import ReplicaSpec


@dataclass(frozen=True)
class ReplicaChange:
    stop: tuple[str, ...]  # instance names
    start: tuple[ReplicaSpec, ...]

    def __bool__(self) -> bool:
        return bool(self.stop or self.start)


def diff_replicas(have: Sequence[ReplicaSpec], want: Sequence[ReplicaSpec]) -> ReplicaChange:
    """Replicas that are gone or changed are stopped; new or changed ones are started.

    A changed replica (command, env, labels, service account) is replaced under the same
    instance name, as a Kubernetes rollout replaces a Pod.
    """
    wanted = {s.instance: s for s in want}
    running = {s.instance: s for s in have}
    stop = tuple(name for name, spec in running.items() if wanted.get(name) != spec)
    start = tuple(spec for name, spec in wanted.items() if running.get(name) != spec)
    return ReplicaChange(stop, start)
