"""Capture settings → the nat-table rules that redirect a pod's TCP through its proxy.

The layout is Istio's sidecar layout (tools/istio-iptables, REDIRECT mode), chain names
included, so `iptables-save` in a plait pod reads like one in an Istio pod:

    PREROUTING ─► ISTIO_INBOUND ─► ISTIO_IN_REDIRECT (REDIRECT → 15006)
    OUTPUT ────► ISTIO_OUTPUT ──► ISTIO_REDIRECT    (REDIRECT → 15001)
                              └─► ISTIO_IN_REDIRECT (the proxy calling its own pod IP)

ISTIO_OUTPUT, in order: excluded outbound ports return; connections from 127.0.0.6 (the
proxy's inbound hop to the app) return; per proxy UID then GID, the proxy calling its own
pod over lo is sent to the inbound listener (app → own service VIP → proxy → proxy inbound
→ app), anything else on lo from the app returns, and everything else of the proxy returns
(no loop); 127.0.0.1 returns; excluded CIDRs return; included ports and CIDRs (or all)
are redirected. Only TCP is redirected; UDP (DNS) passes untouched.

A `RuleSet` is data: tests compare it, `restore_text` renders iptables-restore input, and
`removal_lines` computes what deletes it again from an `iptables-save` listing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from plait.capture.settings import ALL, CaptureSettings

TABLE: Final = "nat"
INBOUND: Final = "ISTIO_INBOUND"
IN_REDIRECT: Final = "ISTIO_IN_REDIRECT"
OUTPUT: Final = "ISTIO_OUTPUT"
REDIRECT: Final = "ISTIO_REDIRECT"
CHAINS: Final = (INBOUND, REDIRECT, IN_REDIRECT, OUTPUT)
"""The chains the rules create, in Istio's order."""

INBOUND_PASSTHROUGH_SOURCE: Final = "127.0.0.6/32"
"""The source the proxy binds when it forwards inbound traffic to the app (as Istio)."""
LOOPBACK: Final = "127.0.0.1/32"


@dataclass(frozen=True)
class Rule:
    """One `-A CHAIN ARGS...` line of the nat table."""

    chain: str
    args: tuple[str, ...]

    def line(self) -> str:
        return " ".join(("-A", self.chain, *self.args))


@dataclass(frozen=True)
class RuleSet:
    """The chains to create and the rules to append, in order, in the nat table."""

    chains: tuple[str, ...]
    rules: tuple[Rule, ...]

    def restore_text(self) -> str:
        """iptables-restore input (to be used with --noflush: other rules stay)."""
        lines = [f"*{TABLE}"]
        lines += [f":{chain} - [0:0]" for chain in self.chains]
        lines += [rule.line() for rule in self.rules]
        lines.append("COMMIT")
        return "\n".join(lines) + "\n"

    def in_chain(self, chain: str) -> list[tuple[str, ...]]:
        return [rule.args for rule in self.rules if rule.chain == chain]


def _jump(target: str, *match: str) -> tuple[str, ...]:
    return (*match, "-j", target)


def _ports_arg(ports: tuple[int, ...]) -> tuple[str, ...]:
    if len(ports) == 1:
        return ("--dport", str(ports[0]))
    return ("-m", "multiport", "--dports", ",".join(str(p) for p in ports))


def _inbound(s: CaptureSettings) -> list[Rule]:
    if s.include_inbound_ports != ALL and not s.include_inbound_ports:
        return []
    rules = [Rule("PREROUTING", _jump(INBOUND, "-p", "tcp"))]
    if s.include_inbound_ports == ALL:
        if s.inbound_exclusions:
            rules.append(
                Rule(INBOUND, _jump("RETURN", "-p", "tcp", *_ports_arg(s.inbound_exclusions)))
            )
        rules.append(Rule(INBOUND, _jump(IN_REDIRECT, "-p", "tcp")))
    else:
        excluded = set(s.inbound_exclusions)
        rules += [
            Rule(INBOUND, _jump(IN_REDIRECT, "-p", "tcp", "--dport", str(port)))
            for port in s.include_inbound_ports
            if port not in excluded
        ]
    return rules


def _owner(s: CaptureSettings, flag: str, owner: int) -> list[Rule]:
    """The three rules Istio writes per proxy UID (and per GID)."""
    rules = [
        Rule(
            OUTPUT,
            _jump(
                IN_REDIRECT,
                "-o",
                "lo",
                "!",
                "-d",
                LOOPBACK,
                "-p",
                "tcp",
                "-m",
                "owner",
                flag,
                str(owner),
            ),
        )
    ]
    loopback_included = s.include_outbound_ip_ranges != ALL and any(
        net.is_loopback for net in s.include_outbound_ip_ranges
    )
    if not loopback_included:
        rules.append(
            Rule(OUTPUT, _jump("RETURN", "-o", "lo", "-m", "owner", "!", flag, str(owner)))
        )
    rules.append(Rule(OUTPUT, _jump("RETURN", "-m", "owner", flag, str(owner))))
    return rules


def _outbound(s: CaptureSettings) -> list[Rule]:
    rules = [Rule("OUTPUT", _jump(OUTPUT))]
    if s.exclude_outbound_ports:
        rules.append(
            Rule(OUTPUT, _jump("RETURN", "-p", "tcp", *_ports_arg(s.exclude_outbound_ports)))
        )
    rules.append(Rule(OUTPUT, _jump("RETURN", "-o", "lo", "-s", INBOUND_PASSTHROUGH_SOURCE)))
    rules += _owner(s, "--uid-owner", s.proxy_uid)
    rules += _owner(s, "--gid-owner", s.proxy_gid)
    rules.append(Rule(OUTPUT, _jump("RETURN", "-d", LOOPBACK)))
    rules += [Rule(OUTPUT, _jump("RETURN", "-d", str(net))) for net in s.exclude_outbound_ip_ranges]
    rules += [
        Rule(OUTPUT, _jump(REDIRECT, "-p", "tcp", "--dport", str(port)))
        for port in s.include_outbound_ports
    ]
    if s.include_outbound_ip_ranges == ALL:
        rules.append(Rule(OUTPUT, _jump(REDIRECT)))
    else:
        rules += [
            Rule(OUTPUT, _jump(REDIRECT, "-d", str(net))) for net in s.include_outbound_ip_ranges
        ]
    return rules


def capture_rules(settings: CaptureSettings) -> RuleSet:
    """The nat-table rules that capture a pod's TCP for its proxy (pure)."""
    redirects = [
        Rule(
            REDIRECT,
            ("-p", "tcp", "-j", "REDIRECT", "--to-ports", str(settings.outbound_capture_port)),
        ),
        Rule(
            IN_REDIRECT,
            ("-p", "tcp", "-j", "REDIRECT", "--to-ports", str(settings.inbound_capture_port)),
        ),
    ]
    return RuleSet(CHAINS, tuple(redirects + _inbound(settings) + _outbound(settings)))


def installed_chains(saved: str) -> list[str]:
    """The capture chains present in an `iptables-save -t nat` listing."""
    declared = {line[1:].split()[0] for line in saved.splitlines() if line.startswith(":")}
    return [chain for chain in CHAINS if chain in declared]


def removal_lines(saved: str) -> list[str]:
    """iptables-restore lines (for --noflush) that delete the capture rules in `saved`.

    `saved` is `iptables-save -t nat` output. Jumps into the capture chains from built-in
    chains are deleted exactly as iptables printed them; then the capture chains are
    flushed and deleted. Nothing else in the table is touched.
    """
    chains = installed_chains(saved)
    if not chains:
        return []
    lines: list[str] = []
    for line in saved.splitlines():
        parts = line.split()
        if (
            len(parts) > 3
            and parts[0] == "-A"
            and parts[1] not in CHAINS
            and parts[-2] == "-j"
            and parts[-1] in CHAINS
        ):
            lines.append("-D " + line[3:])
    lines += [f"-F {chain}" for chain in chains]
    lines += [f"-X {chain}" for chain in chains]
    return lines


def removal_text(saved: str) -> str:
    """iptables-restore input that removes the capture rules, or "" if there are none."""
    lines = removal_lines(saved)
    return "\n".join([f"*{TABLE}", *lines, "COMMIT"]) + "\n" if lines else ""
