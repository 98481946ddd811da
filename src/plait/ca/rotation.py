"""Root rotation without downtime, as three steps on the files of a plait-made CA.

    idle ──add──► added ──switch──► switched ──finish──► idle

- add: make `next-root-cert.pem`/`next-root-key.pem`. The new root joins the trust
  bundle but does not sign; every workload learns to trust it.
- switch: the next root becomes `root-cert.pem`/`root-key.pem` and signs from now on;
  the old root certificate moves to `extra-roots.pem` (still trusted), so certificates
  it signed keep working until they are renewed.
- finish: drop `extra-roots.pem`; the old root is no longer trusted.

A running CA picks each step up through `reload_if_changed` (no restart). `switch` moves
the key before the certificate; a CA that reloads in between sees a mismatched pair and
keeps its last good state until the certificate follows a moment later.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from cryptography.x509.oid import NameOID

from plait.ca import files, store
from plait.ca.authority import DEFAULT_WORKLOAD_TTL
from plait.ca.pki import new_root
from plait.ca.store import Layout
from plait.errors import RotationError


class Phase(StrEnum):
    IDLE = "idle"
    ADDED = "added"
    SWITCHED = "switched"


@dataclass(frozen=True)
class StepResult:
    """What a step did, and what to wait for before the next one."""

    done: str
    next: str


def phase(ca_dir: Path) -> Phase:
    if (ca_dir / files.NEXT_ROOT_CERT).exists() or (ca_dir / files.NEXT_ROOT_KEY).exists():
        return Phase.ADDED
    if (ca_dir / files.EXTRA_ROOTS).exists():
        return Phase.SWITCHED
    return Phase.IDLE


def _require_plait(ca_dir: Path) -> store.CaState:
    if not store.exists(ca_dir):
        raise RotationError(f"{ca_dir}: no CA here (plait makes one on `plait up`)")
    state = store.load_state(ca_dir)
    if state.layout is Layout.PLUGGED:
        raise RotationError(
            f"{ca_dir} holds a plugged-in CA (ca-cert.pem): its root is yours to rotate. Put "
            "the new root next to the old one in root-cert.pem, then replace ca-cert.pem, "
            "ca-key.pem and cert-chain.pem with the new intermediate, then remove the old root"
        )
    return state


def add_next_root(ca_dir: Path, now: dt.datetime) -> StepResult:
    state = _require_plait(ca_dir)
    current = phase(ca_dir)
    if current is Phase.ADDED:
        raise RotationError(
            f"a next root is already in {ca_dir}; run `--step switch`, or remove "
            f"{files.NEXT_ROOT_CERT} and {files.NEXT_ROOT_KEY} to start over"
        )
    if current is Phase.SWITCHED:
        raise RotationError(
            f"the previous rotation is not finished ({files.EXTRA_ROOTS} exists); "
            "run `--step finish` first"
        )
    orgs = state.signer.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    trust_domain = str(orgs[0].value) if orgs else "cluster.local"
    cert, key = new_root(trust_domain, now)
    files.write_private(ca_dir / files.NEXT_ROOT_KEY, files.key_pem(key))
    files.write_public(ca_dir / files.NEXT_ROOT_CERT, files.cert_pem(cert).encode())
    return StepResult(
        done=(
            f"made a new root {cert.subject.rfc4514_string()!r} in {ca_dir / files.NEXT_ROOT_CERT} "
            f"(key {files.NEXT_ROOT_KEY}, mode 0600). It is in the trust bundle now; the "
            "current root still signs."
        ),
        next=(
            "Before `--step switch`, let every workload learn to trust the new root: the "
            "control plane re-reads the CA directory within seconds, each agent fetches the "
            "bundle at its next trust-bundle poll and hands it to Envoy over SDS (ROOTCA). "
            "Wait at least two agent poll intervals; sidecars started later get both roots."
        ),
    )


def switch_root(ca_dir: Path, now: dt.datetime) -> StepResult:
    state = _require_plait(ca_dir)
    if phase(ca_dir) is not Phase.ADDED:
        raise RotationError(f"no next root in {ca_dir}; run `--step add` first")
    nxt = ca_dir / files.NEXT_ROOT_CERT
    if not nxt.exists() or not (ca_dir / files.NEXT_ROOT_KEY).exists():
        raise RotationError(
            f"{ca_dir}: the next root is incomplete; remove next-root-*.pem and add again"
        )
    old = [c.cert for c in state.certs if c.role is store.Role.EXTRA_ROOT] + [state.signer]
    pem = "".join(files.cert_pem(c) for c in old).encode()
    files.write_public(ca_dir / files.EXTRA_ROOTS, pem)
    os.replace(ca_dir / files.NEXT_ROOT_KEY, ca_dir / files.ROOT_KEY)
    os.replace(nxt, ca_dir / files.ROOT_CERT)
    until = now + DEFAULT_WORKLOAD_TTL
    return StepResult(
        done=(
            f"the new root signs from now on ({files.ROOT_CERT}); the old root "
            f"{state.signer.subject.rfc4514_string()!r} moved to {files.EXTRA_ROOTS} and is "
            "still trusted."
        ),
        next=(
            "Agents see the signer change at their next trust-bundle poll and renew their "
            "certificate at once; a certificate not renewed that way expires within one "
            "workload certificate TTL (24 h by default, or the TTL the control plane runs "
            f"with). Run `--step finish` after that TTL has passed, i.e. after "
            f"{until:%Y-%m-%d %H:%M} UTC for the default; it refuses earlier without --force."
        ),
    )


def finish_rotation(
    ca_dir: Path,
    now: dt.datetime,
    *,
    min_wait: dt.timedelta = DEFAULT_WORKLOAD_TTL,
    force: bool = False,
) -> StepResult:
    _require_plait(ca_dir)
    extra = ca_dir / files.EXTRA_ROOTS
    if phase(ca_dir) is not Phase.SWITCHED:
        raise RotationError(f"no old root to drop in {ca_dir}; `--step switch` comes first")
    switched = dt.datetime.fromtimestamp(extra.stat().st_mtime, dt.UTC)
    if now - switched < min_wait and not force:
        raise RotationError(
            f"the root was switched at {switched:%Y-%m-%d %H:%M:%S} UTC, less than "
            f"{_hours(min_wait)} ago: workloads that have not renewed yet still hold certificates "
            "from the old root. Wait, or pass --force once every agent has renewed (each "
            "renews at its first trust-bundle poll after the switch)"
        )
    extra.unlink()
    return StepResult(
        done=f"removed {extra}: the old root is no longer trusted.",
        next=(
            "Agents drop the old root from Envoy's ROOTCA at their next trust-bundle poll. "
            "A sidecar still holding a certificate from the old root fails mTLS from then "
            "on; restarting it gets it a new certificate."
        ),
    )


def _hours(span: dt.timedelta) -> str:
    hours = span.total_seconds() / 3600
    return f"{hours:g} h" if hours >= 1 else f"{span.total_seconds():g} s"
