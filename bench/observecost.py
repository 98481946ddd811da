"""What each way of observing traffic costs one Envoy: `python -m bench.observecost [--reps N]`.

One hand-written one-hop Envoy per variant (`handwritten.forwarder`, plain text), all in
front of the same upstream, observed with the pieces plait uses (`observed.instrument`):
bare; the JSON access log; the stats logger counting Istio's metrics (with its 1 s stats
flush); the tracer at 100% sampling sending Zipkin JSON in Envoy's default batches of 5,
Zipkin JSON in batches of 100, Zipkin protobuf in batches of 100 (plait's setting); and
everything plait's sidecars carry. The collector is the control plane's trace store, in a
child process. For each variant, rep after rep: wrk -t1 -c32 for `--seconds`, and the
Envoy's CPU (from /proc) divided by the requests it served.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import functools
import json
import statistics
import tempfile
from pathlib import Path
from typing import Any

from bench import dataplane as dp
from bench import handwritten as hw
from bench import observed
from bench.loadgen import Load, Request, run_wrk
from bench.procs import cpu_seconds, ensure_wrk
from plait.local.ports import free_port


def variants(rig: dp.Rig) -> dict[str, hw.Instrument]:
    full = observed.instrument(rig.run_dir, rig.collector_port, "obs-one", inbound=True, mtls=False)
    stats = [log for log in full.access_logs if log["name"] == "envoy.access_loggers.stats"]
    files = [log for log in full.access_logs if log["name"] == "envoy.access_loggers.file"]
    assert full.tracing is not None
    json_tracing = copy.deepcopy(full.tracing)
    json_tracing["provider"]["typed_config"]["collector_endpoint_version"] = "HTTP_JSON"
    runtime = {"layered_runtime": full.bootstrap["layered_runtime"]}
    flush = {k: v for k, v in full.bootstrap.items() if k != "layered_runtime"}
    tracer = functools.partial(hw.Instrument, clusters=full.clusters)
    return {
        "bare": hw.BARE,
        "access log (JSON file)": hw.Instrument(access_logs=files),
        "Istio metrics (stats logger)": hw.Instrument(
            access_logs=stats, filters=full.filters, bootstrap=flush
        ),
        "tracer, Zipkin JSON, batches of 5": tracer(tracing=json_tracing),
        "tracer, Zipkin JSON, batches of 100": tracer(tracing=json_tracing, bootstrap=runtime),
        "tracer, Zipkin protobuf, batches of 100": tracer(tracing=full.tracing, bootstrap=runtime),
        "all of plait's": full,
    }


async def measure(reps: int, seconds: float) -> dict[str, Any]:
    wrk = ensure_wrk()
    with tempfile.TemporaryDirectory(prefix="plait-bench-obs-") as tmp:
        rig = dp.Rig(Path(tmp))
        try:
            up = free_port()
            await dp._start_static(rig, "upstream", hw.upstream(up), up)
            await dp._start_collector(rig)
            ports = {}
            for name, ins in variants(rig).items():
                port = ports[name] = free_port()
                config = hw.forwarder(port, "*", up, absolute_url=False, instrument=ins)
                await dp._start_static(rig, name, config, port)
            per_req: dict[str, list[float]] = {name: [] for name in ports}
            for _ in range(reps):
                for name, port in ports.items():
                    req = Request(port, "/", "bench-server:8080")
                    await run_wrk(wrk, req, Load(1, 32, 1), Path(tmp))
                    pid = rig.envoys[name].pid
                    assert pid is not None
                    before = cpu_seconds(pid)
                    result = await run_wrk(wrk, req, Load(1, 32, seconds), Path(tmp))
                    used = cpu_seconds(pid) - before
                    per_req[name].append(1e6 * used / max(1, int(result["requests"])))
        finally:
            await rig.stop()
    bare = statistics.median(per_req["bare"])
    return {
        name: {
            "cpu_us_per_request": statistics.median(values),
            "min": min(values),
            "max": max(values),
            "over_bare_us": statistics.median(values) - bare,
        }
        for name, values in per_req.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.observecost", description=__doc__)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    result = asyncio.run(measure(args.reps, args.seconds))
    print(json.dumps(result, indent=1))
    print("| variant | Envoy CPU µs/request (min–max) | over bare |")
    print("| --- | ---: | ---: |")
    for name, r in result.items():
        print(
            f"| {name} | {r['cpu_us_per_request']:.1f} ({r['min']:.1f}–{r['max']:.1f}) "
            f"| {r['over_bare_us']:+.1f} |"
        )


if __name__ == "__main__":
    main()
