"""Real proxies for the convergence benchmark: plait sidecars, each under its agent.

Run as a process (`python -m bench.envoyclients PORT PROXIES.json RUN_DIR CA_URL
[--plaintext-xds]`), so
that the Envoys and their agents do not share the measured control plane's process. This
process plays `plait up`'s part (`meshid`): it loads the token issuer from RUN_DIR/state
(the control-plane process made it and started the CA at CA_URL), writes each proxy's
token, and runs a SidecarAgent per proxy: key, CSR, certificate, SDS on a Unix socket,
Envoy with plait's bootstrap (one worker thread, xDS over mTLS to PORT). Its listeners
bind the ports in its node metadata, so those must be free ports. `--plaintext-xds`: ADS
without TLS (the scale bench's server is plain text for its simulated proxies; SDS and
the workload certificates stay). Prints `admin NODE_ID URL` per Envoy (its admin API),
then `ready` once every agent has started; stops them all (Envoy drained, then SDS) on SIGTERM, and the
kernel kills the Envoys if this process dies.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

from bench import meshid
from bench.simclient import proxies_from_json
from plait.agent import SupervisorOptions
from plait.model.proxy import Proxy

OPTIONS = SupervisorOptions(log_level="warning", drain_timeout_s=0.5)


async def run_all(
    port: int, proxies: list[Proxy], run_dir: Path, ca_url: str, xds_over_tls: bool = True
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    identity = meshid.issuer(run_dir / "state")
    agents = [
        meshid.agent(
            identity,
            p,
            ca_url=ca_url,
            run_dir=run_dir,
            xds_port=port,
            name=p.id.split("~", 1)[1],
            supervisor=OPTIONS,
            xds_over_tls=xds_over_tls,
        )
        for p in proxies
    ]
    try:
        await asyncio.gather(*(a.start() for a in agents))
        for p, a in zip(proxies, agents, strict=True):
            print(f"admin {p.id} {a.envoy.admin_url}", flush=True)
        print("ready", flush=True)
        await stop.wait()
    finally:
        await asyncio.gather(*(a.stop() for a in agents), return_exceptions=True)
        identity.cleanup()


def main() -> None:
    port, path, run_dir, ca_url = int(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), sys.argv[4]
    proxies = proxies_from_json(Path(path).read_text())
    plaintext = sys.argv[5:] == ["--plaintext-xds"]
    asyncio.run(run_all(port, proxies, run_dir, ca_url, xds_over_tls=not plaintext))


if __name__ == "__main__":
    main()
