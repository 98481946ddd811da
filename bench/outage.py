"""The outage of article 000, reproduced and contained: `python -m bench.outage` (`make outage`).

The shop runs with a slow, saturated risk-assessment (2 workers, 100 ms per assessment:
20 assessments/s at most) and payment's default capacity (32 workers, an unbounded queue
for the rest, card and invoice alike). Two phases, each on a fresh copy of examples/shop
(`plait up --detach`), drive the same open-loop load through the ingress gateway:

- card checkouts (the healthy path, which never calls risk-assessment) all the time;
- a surge of invoice checkouts (twice what risk-assessment can take) in the middle.

Phase "no policy" runs the shop as it is. Phase "with policy" copies
examples/scenarios/outage/policy.yaml (timeout, connection pool, outlier detection, rate
limit on risk-assessment) into the running mesh directory first and waits until every
proxy has ACKed it. Both phases sample payment's and risk-assessment's own `GET /stats`
(queue, busy workers, resident memory). Prints a table, writes the raw results to
bench/results/outage-STAMP/results.json and the plot to docs/img/outage.png.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from bench import machine
from bench.outage_load import Run, Sampler, Stream, drive, per_second, summarize, window
from bench.procs import memory_kib

REPO = Path(__file__).resolve().parents[1]
SHOP = REPO / "examples" / "shop"
POLICY = REPO / "examples" / "scenarios" / "outage" / "policy.yaml"
RESULTS = REPO / "bench" / "results"
PLOT = REPO / "docs" / "img" / "outage.png"
POLICY_FILE = "outage-policy.yaml"  # its name in the running mesh directory

#: The environment that makes risk-assessment the slow dependency of the story.
RISK_ENV = {"RISK_WORKERS": "2", "RISK_DELAY_MS": "100"}
CARD = "/checkout?item=mug&payment=card"
INVOICE = "/checkout?item=book&payment=invoice"


@dataclass(frozen=True)
class Scenario:
    card_rps: float = 10.0
    invoice_rps: float = 40.0
    warmup_s: float = 5.0  # card only
    surge_s: float = 25.0  # card + invoice
    recovery_s: float = 10.0  # card only again
    timeout_s: float = 10.0  # the customer gives up

    @property
    def surge(self) -> tuple[float, float]:
        return (self.warmup_s, self.warmup_s + self.surge_s)

    def streams(self) -> list[Stream]:
        end = self.warmup_s + self.surge_s + self.recovery_s
        return [
            Stream("card", CARD, self.card_rps, 0.0, end),
            Stream("invoice", INVOICE, self.invoice_rps, *self.surge),
        ]


# --------------------------------------------------------------------------- the mesh


def plait(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "plait", *args], capture_output=True, text=True, timeout=timeout
    )


def slow_risk(root: Path, env: dict[str, str] = RISK_ENV) -> None:
    """Set `env` on the risk-assessment Deployment of the mesh directory `root`."""
    path = root / "deployments.yaml"
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    for doc in docs:
        if doc["kind"] == "Deployment" and doc["metadata"]["name"] == "risk-assessment":
            container = doc["spec"]["template"]["spec"]["containers"][0]
            rest = [e for e in container.get("env", []) if e["name"] not in env]
            container["env"] = rest + [{"name": k, "value": v} for k, v in env.items()]
            break
    else:
        raise RuntimeError(f"no Deployment risk-assessment in {path}")
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))


def _cp_status(root: Path) -> dict[str, Any]:
    """The control plane's /status (generation, proxies' ACKs, config errors)."""
    state = json.loads((root / ".plait" / "state.json").read_text())
    with urllib.request.urlopen(state["status_url"], timeout=2) as resp:
        data: dict[str, Any] = json.loads(resp.read())
        return data


def _publish(root: Path, change: Callable[[], object], timeout: float) -> dict[str, Any]:
    """Make a change to the mesh directory; return the control plane's status once it has
    published a new generation and every proxy has ACKed it."""
    before = int(_cp_status(root)["controlPlane"]["generation"])
    change()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        cp = _cp_status(root)
        generation = int(cp["controlPlane"]["generation"])
        if generation > before and all(
            p["connected"] and (p.get("generation") or 0) >= generation for p in cp["proxies"]
        ):
            return cp
        time.sleep(0.05)
    raise RuntimeError(f"change not ACKed by every proxy within {timeout}s: {_cp_status(root)}")


def apply_policy(root: Path, policy: Path = POLICY, timeout: float = 20.0) -> int:
    """Copy the policy into the running mesh; return the generation once every proxy
    ACKed it, or raise with what the control plane reports about the policy's file."""
    cp = _publish(root, lambda: shutil.copy(policy, root / POLICY_FILE), timeout)
    problems = [e for e in cp.get("errors", []) if POLICY_FILE in json.dumps(e)]
    if problems:
        raise RuntimeError(f"the control plane reports problems with the policy: {problems}")
    return int(cp["controlPlane"]["generation"])


def remove_policy(root: Path, timeout: float = 20.0) -> int:
    """Delete the policy from the running mesh; return the generation every proxy ACKed."""
    cp = _publish(root, (root / POLICY_FILE).unlink, timeout)
    return int(cp["controlPlane"]["generation"])


def app_pids(root: Path, module: str) -> list[int]:
    """The live processes of `python -m app.MODULE` that plait started in `root`."""
    found = []
    for pid_dir in Path("/proc").iterdir():
        if not pid_dir.name.isdigit():
            continue
        try:
            cmd = (pid_dir / "cmdline").read_bytes().split(b"\0")
            cwd = os.readlink(pid_dir / "cwd")
        except OSError:
            continue
        if f"app.{module}".encode() in cmd and Path(cwd) == root.resolve():
            found.append(int(pid_dir.name))
    return sorted(found)


def stats_sampler(root: Path) -> Sampler:
    """Polls payment's and risk-assessment's `GET /stats` on the apps themselves, and the
    resident memory of frontend (where checkouts wait once its 100 connections to orders,
    aiohttp's default pool, are all in use) from /proc."""
    state = json.loads((root / ".plait" / "state.json").read_text())
    apps = {p["workload"]: p["app"] for p in state["proxies"] if p.get("app")}
    urls = {"payment": f"http://{apps['payment']}/stats"}
    urls["risk"] = f"http://{apps['risk-assessment']}/stats"
    frontend = app_pids(root, "frontend")
    short = aiohttp.ClientTimeout(total=2)

    async def sample(session: aiohttp.ClientSession) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, url in urls.items():
            async with session.get(url, timeout=short) as resp:
                doc = await resp.json()
            for key in ("queued", "busy", "workers", "rss_kib"):
                out[f"{name}_{key}"] = doc.get(key)
        out["frontend_rss_kib"] = sum(memory_kib(pid).get("VmRSS", 0) for pid in frontend)
        return out

    return sample


# --------------------------------------------------------------------------- a phase


async def run_phase(name: str, policy: bool, scenario: Scenario, progress: Any) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="plait-outage-") as tmp:
        root = Path(tmp) / "shop"
        shutil.copytree(SHOP, root, ignore=shutil.ignore_patterns(".plait", "__pycache__"))
        slow_risk(root)
        up = await asyncio.to_thread(plait, "up", str(root), "--detach", "--gateway-port", "0")
        try:
            if up.returncode != 0:
                raise RuntimeError(f"plait up failed:\n{up.stdout}\n{up.stderr}")
            gateway = next(
                line.split(" ", 1)[1]
                for line in up.stdout.splitlines()
                if line.startswith("gateway: ")
            )
            if policy:
                generation = await asyncio.to_thread(apply_policy, root)
                progress(f"{name}: policy ACKed by every proxy (generation {generation})")
            progress(f"{name}: driving load for {max(s.stop_s for s in scenario.streams()):g}s")
            run = await drive(
                gateway,
                scenario.streams(),
                timeout_s=scenario.timeout_s,
                sampler=stats_sampler(root),
            )
        finally:
            await asyncio.to_thread(plait, "down", str(root))
    return phase_result(name, policy, scenario, run)


def phase_result(name: str, policy: bool, scenario: Scenario, run: Run) -> dict[str, Any]:
    start, stop = scenario.surge
    end = run.duration_s

    def series(key: str) -> list[Any]:
        return [s[key] for s in run.samples if s.get(key) is not None]

    def growth(key: str) -> dict[str, Any]:
        values = series(key)
        return {"start": values[0] if values else None, "max": max(values, default=None)}

    return {
        "name": name,
        "policy": policy,
        "summary": {
            "card_surge": summarize(window(run, "card", start, stop)),
            "card_recovery": summarize(window(run, "card", stop, end)),
            "card_warmup": summarize(window(run, "card", 0, start)),
            "invoice": summarize(window(run, "invoice", start, stop)),
            "payment_rss_kib": growth("payment_rss_kib"),
            "frontend_rss_kib": growth("frontend_rss_kib"),
            "payment_queue_max": max(series("payment_queued"), default=None),
            "in_flight_max": max(series("in_flight"), default=None),
        },
        "per_second": {s: per_second(run, s) for s in ("card", "invoice")},
        "run": run.to_json(),
    }


# --------------------------------------------------------------------------- report


def table(phases: list[dict[str, Any]]) -> str:
    def ms(v: float | None) -> str:
        return "–" if v is None else f"{v:,.0f} ms"

    def pct(v: float | None) -> str:
        return "–" if v is None else f"{v * 100:.1f}%"

    def mib(kib: dict[str, Any]) -> str:
        if kib["start"] is None:
            return "–"
        return f"{kib['start'] / 1024:.1f} → {kib['max'] / 1024:.1f} MiB"

    rows: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
        ("card checkouts, p50 (surge)", lambda s: ms(s["card_surge"]["p50_ms"])),
        ("card checkouts, p99 (surge)", lambda s: ms(s["card_surge"]["p99_ms"])),
        ("card checkouts failed (surge)", lambda s: pct(s["card_surge"]["error_rate"])),
        ("card checkouts, p99 (after the surge)", lambda s: ms(s["card_recovery"]["p99_ms"])),
        ("invoice checkouts succeeded", lambda s: pct(1 - s["invoice"]["error_rate"])),
        ("invoice checkouts, p50", lambda s: ms(s["invoice"]["p50_ms"])),
        ("failed invoice checkouts, p99", lambda s: ms(s["invoice"]["error_p99_ms"])),
        ("checkouts in flight, max", lambda s: f"{s['in_flight_max']}"),
        ("payment queue, max", lambda s: f"{s['payment_queue_max']}"),
        ("payment RSS, start → max", lambda s: mib(s["payment_rss_kib"])),
        ("frontend RSS, start → max", lambda s: mib(s["frontend_rss_kib"])),
    ]
    head = "| | " + " | ".join(p["name"] for p in phases) + " |"
    lines = [head, "|---" * (len(phases) + 1) + "|"]
    for label, cell in rows:
        lines.append(f"| {label} | " + " | ".join(cell(p["summary"]) for p in phases) + " |")
    return "\n".join(lines)


async def _run(scenario: Scenario) -> dict[str, Any]:
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    t0 = time.monotonic()

    def progress(message: str) -> None:
        print(f"[{time.monotonic() - t0:6.1f}s] {message}", file=sys.stderr, flush=True)

    # the load comes from bench/outage_load.py, not wrk
    info = machine.describe() | {"wrk": "bench/outage_load.py (aiohttp, open loop)"}
    results: dict[str, Any] = {"machine": info, "scenario": asdict(scenario)}
    results["risk_env"] = RISK_ENV
    results["policy"] = POLICY.read_text()
    results["phases"] = [
        await run_phase("no policy", False, scenario, progress),
        await run_phase("with policy", True, scenario, progress),
    ]
    return results


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.outage", description=__doc__)
    parser.add_argument("--surge", type=float, default=Scenario.surge_s, help="seconds")
    parser.add_argument("--no-plot", action="store_true")
    args = parser.parse_args()
    scenario = Scenario(surge_s=args.surge)
    out_dir = RESULTS / f"outage-{time.strftime('%Y%m%d-%H%M%S')}"
    try:
        results = asyncio.run(_run(scenario))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted; every mesh the scenario started has been stopped", file=sys.stderr)
        raise SystemExit(130) from None
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(json.dumps(results, indent=1))
    text = table(results["phases"])
    (out_dir / "results.md").write_text(machine.markdown(results["machine"]) + "\n\n" + text + "\n")
    print(text)
    if not args.no_plot:
        from bench.outage_plot import plot

        plot(results, PLOT)
        print(f"plot: {PLOT}", file=sys.stderr)
    print(f"raw results: {out_dir}", file=sys.stderr)


if __name__ == "__main__":
    main()
