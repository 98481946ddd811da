"""Real proxies for the convergence benchmark: plait sidecars run by plait's EnvoySupervisor.

Run as a process (`python -m bench.envoyclients PORT PROXIES.json RUN_DIR`), so that the
Envoys and their supervisors do not share the measured control plane's process. Each
proxy gets plait's bootstrap (one worker thread, as local mode runs it); its listeners
bind the ports in its node metadata, so those must be free ports. Prints `ready` once
every Envoy has started; stops them all (drain, SIGTERM) on SIGTERM, and the kernel kills
them if this process dies.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

from bench.simclient import proxies_from_json
from plait.agent import BootstrapOptions, EnvoySupervisor, SupervisorOptions
from plait.model.proxy import Proxy

OPTIONS = SupervisorOptions(log_level="warning", drain_timeout_s=0.5)


async def run_all(port: int, proxies: list[Proxy], run_dir: Path) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    envoys = [
        EnvoySupervisor(
            BootstrapOptions(proxy=p, admin_port=0, xds_host="127.0.0.1", xds_port=port),
            run_dir,
            name=p.id.split("~", 1)[1],
            options=OPTIONS,
        )
        for p in proxies
    ]
    try:
        await asyncio.gather(*(e.start() for e in envoys))
        print("ready", flush=True)
        await stop.wait()
    finally:
        await asyncio.gather(*(e.stop() for e in envoys), return_exceptions=True)


def main() -> None:
    port, path, run_dir = int(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    proxies = proxies_from_json(Path(path).read_text())
    asyncio.run(run_all(port, proxies, run_dir))


if __name__ == "__main__":
    main()
