"""What each of plait's per-request differences costs a two-hop mTLS path:
`python -m bench.pathcost [--reps N] [--seconds S] [--connections C] [--only NAME,...]
[--callgrind DIR]`.

In one run: plait's two sidecars with mTLS (as `bench.dataplane` runs them: control
plane, CA, agents, telemetry), the observed hand-written mTLS pair (`observed.instrument`),
and copies of that pair with one of plait's differences added at a time (XFCC, the idle
filters, the retry policy and circuit breakers, the route and HCM options, plait's TLS
parameters, plait's (Istio's) cluster, route and stat prefix names), then with all of
them; and XFCC as istiod sets it (with DNS SANs) or without the Subject.
Each pair gets wrk -t1 -c32 (`--connections`) for `--seconds` after a 1 s warm-up, pairs
interleaved and their order rotated per rep; the CPU each Envoy of the pair used (from
/proc), per request, is reported per side (client, server) as the median over reps with
its range. With `--callgrind`, every Envoy but the upstream runs under valgrind and the
figure is user-space instructions per request instead (`bench.callgrind`): slow (tens of
requests per second, minutes to start), but a loaded machine does not change it much.
Some of an Envoy's work is per second, not per request (span batches and access logs
are flushed every second at these rates): at 20 req/s it weighs three times what it
does at 60, and a loaded machine changes the rate. The table therefore also gives
`pathreport.rate_corrected`:
per pair, instructions = a × requests + b × seconds fitted over all reps with one b for
all pairs, and a over the observed pair's.

`static` is plait's pair itself, copied once synced from its Envoys' config dumps into
two static Envoys (`staticcopy`): the same configuration without its delivery (xDS, SDS,
agent). `static-*` are that copy with one group of plait's configuration trimmed to the
observed pair's (`TRIMS`), `static-trim` with all of them.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import os
import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from bench import dataplane as dp
from bench import handwritten as hw
from bench import meshid, observed, staticcopy
from bench.callgrind import Callgrind, worker_instructions
from bench.loadgen import Load, Request, probe, run_wrk
from bench.meshgen import NAMESPACE
from bench.pathreport import report
from bench.procs import ensure_wrk
from plait.agent import SupervisorOptions
from plait.local.ports import free_port
from plait.model.identity import SpiffeId
from plait.model.proxy import Proxy
from plait.translate import tracing

Config = dict[str, Any]
Mutation = Callable[[Config, Config], None]  # (server config, client config)
_TYPES = "type.googleapis.com/envoy.extensions.filters.http."


def _hcm(config: Config) -> Config:
    hcm: Config = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0][
        "typed_config"
    ]
    return hcm


def _target(config: Config) -> Config:
    cluster: Config = config["static_resources"]["clusters"][0]
    return cluster


def _route(config: Config) -> Config:
    route: Config = _hcm(config)["route_config"]["virtual_hosts"][0]["routes"][0]["route"]
    return route


def xfcc(server: Config, _client: Config) -> None:
    """The server's XFCC, as plait's inbound mTLS chain sets it (Subject and URI; istiod
    also asks for DNS SANs: `xfcc_istio`)."""
    hcm = _hcm(server)
    hcm["forward_client_cert_details"] = "APPEND_FORWARD"
    hcm["set_current_client_cert_details"] = {"subject": True, "uri": True}


def xfcc_istio(server: Config, client: Config) -> None:
    """XFCC as istiod's inbound chain sets it: plait's, plus the DNS SANs (for comparison)."""
    xfcc(server, client)
    _hcm(server)["set_current_client_cert_details"]["dns"] = True


def _idle_filters() -> list[Config]:
    return [
        {
            "name": "envoy.filters.http.fault",
            "typed_config": {"@type": _TYPES + "fault.v3.HTTPFault"},
        },
        {"name": "envoy.filters.http.cors", "typed_config": {"@type": _TYPES + "cors.v3.Cors"}},
        {
            "name": "envoy.filters.http.local_ratelimit",
            "typed_config": {
                "@type": _TYPES + "local_ratelimit.v3.LocalRateLimit",
                "stat_prefix": "http_local_rate_limiter",
            },
        },
    ]


def filters(server: Config, client: Config) -> None:
    """plait's idle filters before the router: fault, CORS and local rate limit on the
    client with the dynamic forward proxy, the local rate limit alone on the server (its
    inbound routes never configure fault or CORS: `translate.httpfilters`)."""
    _hcm(server)["http_filters"][-1:-1] = _idle_filters()[-1:]
    dfp = {
        "name": "envoy.filters.http.dynamic_forward_proxy",
        "typed_config": {
            "@type": _TYPES + "dynamic_forward_proxy.v3.FilterConfig",
            "dns_cache_config": {"name": "outbound_dns_cache", "dns_lookup_family": "V4_PREFERRED"},
        },
    }
    _hcm(client)["http_filters"][-1:-1] = [*_idle_filters(), dfp]


_BREAKERS = {
    "thresholds": [
        {
            "max_connections": 4294967295,
            "max_pending_requests": 4294967295,
            "max_requests": 4294967295,
            "max_retries": 4294967295,
            "track_remaining": True,
        }
    ]
}


def retries(server: Config, client: Config) -> None:
    """The client route's retry policy (Istio's default) and both clusters' breakers."""
    _route(client)["retry_policy"] = {
        "retry_on": "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes",
        "num_retries": 2,
        "retry_host_predicate": [
            {
                "name": "envoy.retry_host_predicates.previous_hosts",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3."
                    "PreviousHostsPredicate"
                },
            }
        ],
        "host_selection_retry_max_attempts": "5",
        "retriable_status_codes": [503],
    }
    for config in (server, client):
        _target(config)["circuit_breakers"] = copy.deepcopy(_BREAKERS)


def options(server: Config, client: Config) -> None:
    """HCM and route options: normalize_path, the websocket upgrade, no route timeout,
    the inbound route's x-plait-sidecar header, max_grpc_timeout 0 outbound."""
    for config in (server, client):
        hcm = _hcm(config)
        hcm["upgrade_configs"] = [{"upgrade_type": "websocket"}]
        _route(config)["timeout"] = "0s"
    _hcm(server)["normalize_path"] = True
    _hcm(server)["route_config"]["request_headers_to_add"] = [
        {
            "header": {"key": "x-plait-sidecar", "value": "sidecar~bench-server-0.default"},
            "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
        }
    ]
    _route(client)["max_grpc_timeout"] = "0s"


def tls(server: Config, client: Config) -> None:
    """plait's TLS parameters: ALPN (h2, http/1.1 offered by the server, `istio` asked
    by the client), TLS 1.2–1.3 with Istio's TLS 1.2 ciphers, the TLS inspector."""
    listener = server["static_resources"]["listeners"][0]
    listener["listener_filters"] = [
        {
            "name": "envoy.filters.listener.tls_inspector",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector."
                "v3.TlsInspector"
            },
        }
    ]
    listener["filter_chains"][0]["filter_chain_match"] = {"transport_protocol": "tls"}
    common = listener["filter_chains"][0]["transport_socket"]["typed_config"]["common_tls_context"]
    common["tls_params"] = {
        "tls_minimum_protocol_version": "TLSv1_2",
        "tls_maximum_protocol_version": "TLSv1_3",
        "cipher_suites": [
            "ECDHE-ECDSA-AES256-GCM-SHA384",
            "ECDHE-RSA-AES256-GCM-SHA384",
            "ECDHE-ECDSA-AES128-GCM-SHA256",
            "ECDHE-RSA-AES128-GCM-SHA256",
            "AES256-GCM-SHA384",
            "AES128-GCM-SHA256",
        ],
    }
    common["alpn_protocols"] = ["h2", "http/1.1"]
    up = _target(client)["transport_socket"]["typed_config"]["common_tls_context"]
    up["tls_params"] = {
        "tls_minimum_protocol_version": "TLSv1_2",
        "tls_maximum_protocol_version": "TLSv1_3",
    }
    up["alpn_protocols"] = ["istio"]


def xfcc_no_subject(server: Config, client: Config) -> None:
    """XFCC without the Subject (for comparison only: Istio's header carries it)."""
    xfcc(server, client)
    _hcm(server)["set_current_client_cert_details"].pop("subject")


def names(server: Config, client: Config) -> None:
    """plait's (Istio's) names for what each request names (`observed.istio_names`); the
    observed pair of `bench.dataplane` has them too since the static copy's analysis."""
    host = f"{dp.SERVICE}.{NAMESPACE}.svc.cluster.local"
    observed.istio_names(server, "server", host)
    observed.istio_names(client, "client", host)


MUTATIONS: dict[str, Mutation] = {
    "xfcc": xfcc,
    "filters": filters,
    "retries": retries,
    "options": options,
    "tls": tls,
    "names": names,
}
EXTRA: dict[str, Mutation] = {"xfcc-istio": xfcc_istio, "xfcc-no-subject": xfcc_no_subject}


def _all(server: Config, client: Config) -> None:
    for mutate in MUTATIONS.values():
        mutate(server, client)


async def _pairs(
    rig: dp.Rig, upstream: int, names: list[str], wrapper: tuple[str, ...], timeout: float
) -> dict[str, tuple[str, str, int]]:
    """The observed hand-written mTLS pair, bare of plait's differences and with each;
    by variant: (client Envoy, server Envoy, client port)."""
    assert rig.security is not None
    ca, certs = rig.security.ca, rig.run_dir / "path-certs"
    server_id, client_id = (
        SpiffeId(meshid.TRUST_DOMAIN, NAMESPACE, sa) for sa in ("obs-server", "obs-client")
    )
    server_cert = meshid.static_cert(ca, server_id, certs)
    client_cert = meshid.static_cert(ca, client_id, certs)
    variants: dict[str, Mutation | None] = {"observed": None, **MUTATIONS, "all": _all, **EXTRA}
    out, starts = {}, []
    for name, mutate in variants.items():
        if names and name not in names and name != "observed":
            continue
        ts, tc = free_port(), free_port()
        server = hw.forwarder(
            ts, "*", upstream, absolute_url=False,
            listener_tls=hw.downstream_tls(server_cert),
            instrument=observed.instrument(rig.run_dir, rig.collector_port, "obs-server", inbound=True, mtls=True),
        )  # fmt: skip
        client = hw.forwarder(
            tc, dp.AUTHORITY, ts, absolute_url=True,
            cluster_tls=hw.upstream_tls(client_cert, server_id.uri, dp.SERVICE),
            instrument=observed.instrument(rig.run_dir, rig.collector_port, "obs-client", inbound=False, mtls=True),
        )  # fmt: skip
        for config in (server, client):  # plait's; Envoy under valgrind can be slow to connect
            _target(config)["connect_timeout"] = "10s"
        if mutate is not None:
            mutate(server, client)
        starts.append(dp._start_static(rig, f"{name} server", server, ts, wrapper, timeout))
        starts.append(dp._start_static(rig, f"{name} client", client, tc, wrapper, timeout))
        out[name] = (f"{name} client", f"{name} server", tc)
    await asyncio.gather(*starts)
    return out


async def _live_dump(admin_url: str, timeout: float) -> Config:
    """`/config_dump?include_eds` of a running Envoy (slow under valgrind: `timeout`)."""
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
        session.get(f"{admin_url}/config_dump", params={"include_eds": ""}) as response,
    ):
        response.raise_for_status()
        dump: Config = await response.json(content_type=None)
        return dump


def _static_listeners(config: Config) -> list[Config]:
    listeners: list[Config] = config["static_resources"]["listeners"]
    return listeners


def _static_clusters(config: Config) -> list[Config]:
    clusters: list[Config] = config["static_resources"]["clusters"]
    return clusters


def trim_boot(server: Config, client: Config) -> None:
    """The observed pair's bootstrap: no node, overload manager, admin access log, admin
    runtime layer or RE2 limit (the runtime keeps the span batching)."""
    for config in (server, client):
        for key in ("node", "overload_manager"):
            config.pop(key, None)
        config["admin"].pop("access_log", None)
        config["layered_runtime"] = {
            "layers": [{"name": "static", "static_layer": dict(tracing.ZIPKIN_RUNTIME)}]
        }


def trim_tls(_server: Config, client: Config) -> None:
    """The client's cluster with one transport socket (plait's mTLS one) instead of
    `transport_socket_matches` on the endpoint's tlsMode (and no tlsMode metadata)."""
    for cluster in _static_clusters(client):
        matches = cluster.pop("transport_socket_matches", None)
        if matches is None:
            continue
        cluster["transport_socket"] = next(m["transport_socket"] for m in matches if m.get("match"))
        for locality in cluster.get("load_assignment", {}).get("endpoints", []):
            for lb in locality.get("lb_endpoints", []):
                lb.get("metadata", {}).get("filter_metadata", {}).pop(
                    "envoy.transport_socket_match", None
                )


def trim_size(server: Config, client: Config) -> None:
    """Only what the measured path uses: the client's outbound listener with its one
    virtual host to bench-server, the server's inbound listener with its mTLS chain, the
    clusters those name and the trace collector."""
    to_server = f"outbound|8080||{dp.SERVICE}.{NAMESPACE}.svc.cluster.local"
    for config, keep in ((client, "virtualOutbound"), (server, "virtualInbound")):
        listeners = [x for x in _static_listeners(config) if x["name"] == keep]
        config["static_resources"]["listeners"] = listeners
        for listener in listeners:
            listener["filter_chains"] = [
                c for c in listener["filter_chains"] if c.get("name") != "inbound-plaintext"
            ]
            for chain in listener["filter_chains"]:
                hcm = chain["filters"][0]["typed_config"]
                hosts = hcm["route_config"]["virtual_hosts"]
                hcm["route_config"]["virtual_hosts"] = [
                    h
                    for h in hosts
                    if config is server
                    or any(r.get("route", {}).get("cluster") == to_server for r in h["routes"])
                ]
        used = json.dumps(listeners)
        config["static_resources"]["clusters"] = [
            c
            for c in _static_clusters(config)
            if f'"{c["name"]}"' in used or c["name"] == "plait-tracing-collector"
        ]


def trim_direction(server: Config, client: Config) -> None:
    """No `traffic_direction` on the listeners (the observed pair's have none)."""
    for config in (server, client):
        for listener in _static_listeners(config):
            listener.pop("traffic_direction", None)


def trim_names(server: Config, client: Config) -> None:
    """The observed pair's names for what each request names: the forwarder's cluster
    (`target`, where plait has Istio's `outbound|8080||HOST` / `inbound|PORT||`, which
    the access log and the spans carry) and the HCM's stat prefix (`forward`)."""
    to_server = f"outbound|8080||{dp.SERVICE}.{NAMESPACE}.svc.cluster.local"
    for config in (server, client):
        names = {"outbound_http_proxy": "forward"}
        for cluster in _static_clusters(config):
            if (
                cluster["name"].startswith("inbound|")
                if config is server
                else cluster["name"] == to_server
            ):
                names[cluster["name"]] = "target"
        for listener in _static_listeners(config):
            for chain in listener["filter_chains"]:
                prefix = chain["filters"][0]["typed_config"].get("stat_prefix", "")
                if prefix.startswith("inbound_"):
                    names[prefix] = "forward"
        renamed = observed.renamed(config["static_resources"], names)
        config["static_resources"] = renamed


TRIMS: dict[str, Mutation] = {
    "static-boot": trim_boot,
    "static-tls": trim_tls,
    "static-size": trim_size,
    "static-direction": trim_direction,
    "static-names": trim_names,
}


def _trim_all(server: Config, client: Config) -> None:
    for trim in TRIMS.values():
        trim(server, client)


async def _static_pairs(
    rig: dp.Rig,
    proxies: dict[str, Proxy],
    names: list[str],
    wrapper: tuple[str, ...],
    timeout: float,
) -> dict[str, tuple[str, str, int]]:
    """plait's mTLS pair, copied once synced into two static Envoys (`staticcopy`): the
    same bootstrap, listeners, routes, clusters and endpoints, with no xDS, SDS or agent;
    certificates for the same SPIFFE identities from the same CA, in files. The copy's
    listeners move to free ports (the client's endpoint for the server with them), its
    access logs to files of its own; the upstream and the trace collector stay the same.
    `names` picks the copy (`static`) and copies with one group of plait's configuration
    trimmed to the observed pair's (`TRIMS`, or all of them: `static-trim`). By variant:
    (client Envoy, server Envoy, client port)."""
    assert rig.security is not None
    variants: dict[str, Mutation | None] = {"static": None, **TRIMS, "static-trim": _trim_all}
    wanted = [n for n in variants if not names or n in names]
    if not wanted:
        return {}
    workloads = (dp.CLIENT, dp.SERVICE)
    dumps = [await _live_dump(rig.admin_url(f"{w} sidecar"), timeout) for w in workloads]
    certs = {
        w: meshid.static_cert(
            rig.security.ca,
            SpiffeId(meshid.TRUST_DOMAIN, NAMESPACE, proxies[w].service_account),
            rig.run_dir / "static-certs",
        )
        for w in workloads
    }
    out, starts = {}, []
    for name in wanted:
        ports = {p: free_port() for dump in dumps for p in staticcopy.listener_ports(dump)}
        configs = {}
        for workload, dump in zip(workloads, dumps, strict=True):
            proxy = proxies[workload]
            logs = {}
            if proxy.access_log is not None:
                logs[proxy.access_log] = str(rig.run_dir / f"{name}-{workload}.access.log")
            configs[workload] = staticcopy.static_bootstrap(
                dump, staticcopy.file_secrets(certs[workload]), ports=ports, paths=logs
            )
        mutate = variants[name]
        if mutate is not None:
            mutate(configs[dp.SERVICE], configs[dp.CLIENT])
        server, client = proxies[dp.SERVICE].inbound_port, proxies[dp.CLIENT].outbound_port
        assert server is not None and client is not None
        for side, workload, port in (("server", dp.SERVICE, server), ("client", dp.CLIENT, client)):
            starts.append(
                dp._start_static(
                    rig, f"{name} {side}", configs[workload], ports[port], wrapper, timeout
                )
            )
        out[name] = (f"{name} client", f"{name} server", ports[client])
    await asyncio.gather(*starts)
    return out


async def measure(
    reps: int, seconds: float, names: list[str], conns: int, callgrind: Path | None
) -> dict[str, Any]:
    """Per pair, the CPU µs (or, with `callgrind` set to a directory that keeps the
    dumps, the instructions) each side spent per request."""
    wrk = ensure_wrk()
    with tempfile.TemporaryDirectory(prefix="plait-bench-path-") as tmp:
        rig = dp.Rig(Path(tmp))
        cg = Callgrind(Path(tmp), callgrind) if callgrind is not None else None
        wrapper, timeout = (cg.wrapper, 1800.0) if cg is not None else ((), 30.0)
        try:
            up = free_port()
            await dp._start_static(rig, "upstream", hw.upstream(up), up)
            await dp._start_collector(rig)
            options = SupervisorOptions(
                log_level="warning", wrapper=wrapper, start_timeout_s=timeout
            )
            plait, pairs = await asyncio.gather(
                dp._start_plait(rig, up, options, timeout, dumps=cg is None),
                _pairs(rig, up, names, wrapper, timeout),
            )
            client_port = plait[dp.CLIENT].outbound_port
            assert client_port is not None
            copied = await _static_pairs(rig, plait, names, wrapper, timeout)
            pairs = {
                "plait": ("bench-client sidecar", "bench-server sidecar", client_port),
                **copied,
                **pairs,
            }
            absolute = f"http://{dp.AUTHORITY}/"
            for name, (_c, _s, port) in pairs.items():
                for _ in range(5):  # the first connection can time out under valgrind
                    status, body = await probe(Request(port, absolute, dp.AUTHORITY), timeout=60)
                    if status == 200:
                        break
                else:
                    raise RuntimeError(f"{name}: HTTP {status} {body[:200]!r}")
            counters = await dp.tls_counters(rig) if copied else {}
            for _client, server_envoy, _port in copied.values():  # the copies' mTLS is real
                seen = counters[server_envoy]
                if not seen.get("server handshake") or not seen.get("server versions.TLSv1.3"):
                    raise RuntimeError(f"{server_envoy} saw no TLS 1.3 handshake: {seen}")
            per_req: dict[str, dict[str, list[float]]] = {
                n: {"client": [], "server": [], "rps": [], "other": []} for n in pairs
            }
            if cg is not None:  # instructions of the threads but Envoy's main one
                for sides in per_req.values():
                    sides.update(client_workers=[], server_workers=[])
            idle: dict[str, tuple[float, float]] = {}  # instructions/s idle: all, workers
            if cg is not None:
                pids = {e: rig.envoys[e].pid for c, s, _ in pairs.values() for e in (c, s)}
                await asyncio.gather(*(cg.zero(p) for p in pids.values() if p is not None))
                await asyncio.sleep(seconds)
                counts = await asyncio.gather(*(cg.dump(p) for p in pids.values() if p))
                idle = {
                    e: (sum(n.values()) / seconds, worker_instructions(n) / seconds)
                    for e, n in zip(pids, counts, strict=True)
                }
            order = list(pairs)
            for rep in range(reps):
                for name in order[rep % len(order) :] + order[: rep % len(order)]:
                    client, server, port = pairs[name]
                    req = Request(port, absolute, dp.AUTHORITY)
                    await run_wrk(wrk, req, Load(1, conns, 1), Path(tmp))
                    if cg is not None:
                        pids = {
                            side: rig.envoys[e].pid
                            for side, e in (("client", client), ("server", server))
                        }
                        await asyncio.gather(*(cg.zero(p) for p in pids.values() if p))
                    before = dp._Clock.read(rig)
                    result = await run_wrk(wrk, req, Load(1, conns, seconds), Path(tmp))
                    usage = dp._usage(before, dp._Clock.read(rig), result["duration_us"] / 1e6)
                    n = max(1, int(result["requests"]))
                    for side, envoy in (("client", client), ("server", server)):
                        if cg is not None:
                            pid = rig.envoys[envoy].pid
                            assert pid is not None
                            threads = await cg.dump(pid, f"{name}.{side}.{rep}.")
                            took = result["duration_us"] / 1e6
                            total = sum(threads.values()) - idle[envoy][0] * took
                            workers = worker_instructions(threads) - idle[envoy][1] * took
                            per_req[name][side].append(total / n)
                            per_req[name][f"{side}_workers"].append(workers / n)
                        else:
                            per_req[name][side].append(1e6 * usage["envoys_s"][envoy] / n)
                    per_req[name]["other"].append(usage["other_cores"])
                    per_req[name]["rps"].append(result["rps"])
        finally:
            await rig.stop()
    return {
        name: {
            key: {"median": statistics.median(v), "min": min(v), "max": max(v), "all": v}
            for key, v in sides.items()
        }
        for name, sides in per_req.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.pathcost", description=__doc__)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--callgrind",
        type=Path,
        metavar="DIR",
        help="count instructions (valgrind), not CPU time; keep the dumps in DIR",
    )
    parser.add_argument("--only", default="", help="variants, comma-separated")
    args = parser.parse_args()
    names = [n for n in args.only.split(",") if n]
    load = os.getloadavg()
    result = asyncio.run(measure(args.reps, args.seconds, names, args.connections, args.callgrind))
    print(json.dumps(result, indent=1))
    print(report(result))
    print(f"load average (1, 5, 15 min) before: {load}, after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
