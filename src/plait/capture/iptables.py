"""Applying and removing the capture rules in the current network namespace.

The only I/O of the capture package: `iptables-save -t nat` to read what is there and
`iptables-restore --noflush` to change it, each change one atomic restore transaction
that touches the capture chains and the jumps into them, nothing else. `apply` first
removes rules a previous run left (an init container that restarts, settings that
changed), so it is idempotent. Run it inside a pod with `ip netns exec POD ...`.
"""

from __future__ import annotations

import os
import shutil
import subprocess

from plait.capture.rules import RuleSet, removal_text
from plait.errors import CaptureError

INSTALL_HINT = "install Debian's iptables package (apt-get install iptables)"
TIMEOUT_S = 30.0


def need_root(command: str) -> str | None:
    """Why `command` cannot run here (not root), or None."""
    if os.geteuid() != 0:
        return f"{command} changes iptables rules and needs root (CAP_NET_ADMIN); run it as root"
    return None


def _run(argv: list[str], stdin: str | None = None) -> str:
    if shutil.which(argv[0]) is None:
        raise CaptureError(f"{argv[0]} not found: {INSTALL_HINT}")
    try:
        done = subprocess.run(
            argv, input=stdin, capture_output=True, text=True, timeout=TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise CaptureError(f"{' '.join(argv)} did not finish in {TIMEOUT_S:.0f}s") from exc
    if done.returncode != 0:
        where = f"\ninput was:\n{stdin}" if stdin else ""
        raise CaptureError(
            f"{' '.join(argv)} failed (exit {done.returncode}): {done.stderr.strip()}{where}"
        )
    return done.stdout


def saved_nat() -> str:
    """`iptables-save -t nat` of the current network namespace."""
    return _run(["iptables-save", "-t", "nat"])


def _restore(text: str) -> None:
    _run(["iptables-restore", "--noflush"], stdin=text)


def remove() -> bool:
    """Remove the capture rules here; False if there were none. Raises CaptureError."""
    text = removal_text(saved_nat())
    if not text:
        return False
    _restore(text)
    return True


def apply(rules: RuleSet) -> bool:
    """Install `rules` here, replacing capture rules already present (returned True)."""
    replaced = remove()
    _restore(rules.restore_text())
    return replaced
