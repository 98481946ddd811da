"""Run plait's benchmarks: `python -m bench.run [--quick] [--only dataplane|controlplane|scale]
[--json PATH] [--clients sotw|delta|mixed] [--sim go|python] [--plaintext-xds]
[--proxy-sched batch|normal] [--real-envoys N] [--proxy-grpc default|io-manager]`.

Prints progress while it runs, then markdown tables; writes the raw results (every run,
every repetition, the machine, the sidecars' config dumps) to bench/results/. The full
run takes about twelve minutes (the data plane alone about nine); `--quick` about three.
The scale scenario (`bench/scale.py`: 1,000 services × 1,000 simulated proxies and 3 real
Envoys, `--real-envoys N`) runs only with `--only scale`; `--json PATH` writes its one result object (keys: `bench/scale.py`)
to PATH.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench import convergence, dataplane, machine, report, scale, shopedit

RESULTS = Path(__file__).resolve().parent / "results"


def _progress(start: float) -> dataplane.Progress:
    def say(message: str) -> None:
        print(f"[{time.monotonic() - start:6.1f}s] {message}", file=sys.stderr, flush=True)

    return say


async def _run(args: argparse.Namespace, out_dir: Path) -> dict[str, Any]:
    """Everything, in order; SIGINT or SIGTERM cancels it, which stops every process it
    started (each part stops its processes in a `finally`)."""
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    progress = _progress(time.monotonic())
    results: dict[str, Any] = {"machine": machine.describe(), "quick": args.quick}
    progress(f"machine: {results['machine']['cpu']}, {results['machine']['cores']} cores")
    if args.only in (None, "dataplane"):
        quick = dataplane.DataplaneOptions(reps=2, duration_s=3)
        opts = quick if args.quick else dataplane.DataplaneOptions()
        if args.reps is not None:
            opts = replace(opts, reps=args.reps)
        if args.connections is not None:
            opts = replace(opts, connections=args.connections)
        results["dataplane"] = await dataplane.run(opts, out_dir, progress)
    if args.only in (None, "controlplane"):
        results["controlplane"] = await convergence.run(args.quick, progress)
        results["shop"] = await shopedit.run(5 if args.quick else 20, progress)
    if args.only == "scale":
        results["scale"] = await scale.run(
            args.quick,
            progress,
            args.clients,
            args.real_envoys,
            args.proxy_grpc,
            args.sim,
            not args.plaintext_xds,
            args.proxy_sched,
        )
    end_commit = machine.describe()["plait_commit"]
    if end_commit != results["machine"]["plait_commit"]:  # src/ changed under the bench
        results["machine"]["plait_commit"] += f" → {end_commit} (changed during the run)"
        progress(f"warning: plait's checkout changed during the run (now {end_commit})")
    return results


def markdown(results: dict[str, Any]) -> str:
    parts = ["## Machine\n\n" + machine.markdown(results["machine"])]
    if "dataplane" in results:
        parts.append("## Data plane\n\n" + report.dataplane(results["dataplane"]))
    if "controlplane" in results:
        parts.append("## Control plane\n\n" + report.convergence(results["controlplane"]))
    if "shop" in results:
        parts.append("## The shop\n\n" + report.shop(results["shop"]))
    if "scale" in results:
        shown = {k: v for k, v in results["scale"].items() if k != "detail"}
        parts.append("## Scale\n\n```json\n" + json.dumps(shown, indent=1) + "\n```")
    return "\n\n".join(parts) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer, shorter runs (a smoke test)")
    parser.add_argument("--only", choices=["dataplane", "controlplane", "scale"])
    parser.add_argument("--json", type=Path, help="with --only scale: write its result here")
    parser.add_argument(
        "--clients",
        choices=["sotw", "delta", "mixed"],
        default="sotw",
        help="with --only scale: the simulated proxies' ADS flavour",
    )
    parser.add_argument(
        "--reps", type=int, metavar="N", help="with --only dataplane: repetitions (default 7)"
    )
    parser.add_argument(
        "--connections",
        type=lambda text: tuple(int(c) for c in text.split(",")),
        metavar="C,...",
        help="with --only dataplane: wrk connection counts (default 1,32)",
    )
    parser.add_argument(
        "--real-envoys",
        type=int,
        default=3,
        metavar="N",
        help="with --only scale: real plait sidecars next to the simulated proxies (0: none)",
    )
    parser.add_argument(
        "--proxy-grpc",
        choices=["default", "io-manager"],
        default="default",
        help="with --only scale and --sim python: the simulated proxies' gRPC I/O "
        "(io-manager: the control plane's settings, a cheaper load generator)",
    )
    parser.add_argument(
        "--plaintext-xds",
        action="store_true",
        help="with --only scale: the ADS port in plain text (default: mutual TLS, as plait's "
        "proxies connect)",
    )
    parser.add_argument(
        "--sim",
        choices=["go", "python"],
        default="go",
        help="with --only scale: the simulated proxies' implementation (go: bench/simgo, "
        "built once with Go; python: bench.simclient, ~5x the CPU on the same cores)",
    )
    parser.add_argument(
        "--proxy-sched",
        choices=["batch", "normal"],
        default="batch",
        help="with --only scale: the simulated proxies' scheduling policy (batch: SCHED_BATCH, "
        "their wake-ups do not preempt the control plane, as proxies on other machines)",
    )
    args = parser.parse_args()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out_dir = RESULTS / f"{stamp}{'-quick' if args.quick else ''}"
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        results = asyncio.run(_run(args, out_dir))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted; every process the bench started has been stopped", file=sys.stderr)
        raise SystemExit(130) from None
    (out_dir / "results.json").write_text(json.dumps(results, indent=1))
    if args.json is not None and "scale" in results:
        args.json.write_text(json.dumps(results["scale"], indent=1) + "\n")
    text = markdown(results)
    (out_dir / "results.md").write_text(text)
    print(text)
    print(f"raw results: {out_dir}", file=sys.stderr)


if __name__ == "__main__":
    main()
