"""`plait up` (foreground and --detach) and `plait down`."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

from rich.console import Console

from plait.cli import exitcodes, render
from plait.errors import MeshStateError, PlaitError
from plait.local.statefile import MeshState, clear_state, read_state, state_path
from plait.local.upoptions import UpOptions
from plait.sources.workloads import STATE_DIR

UP_LOG = "up.log"


def _already_running(directory: Path) -> MeshState | None:
    try:
        return read_state(directory)
    except MeshStateError:
        return None


def _refuse_if_running(directory: Path, err: Console) -> bool:
    running = _already_running(directory)
    if running is not None:
        err.print(
            f"[red]error:[/] a mesh is already running for {directory} (pid {running.pid}); "
            f"stop it with `plait down {directory}`"
        )
    return running is not None


def refuse_transparent(err: Console) -> bool:
    """--transparent makes network namespaces, veths and iptables rules: Linux and root."""
    if sys.platform != "linux" or os.geteuid() != 0:
        err.print(
            "[red]error:[/] --transparent needs root on Linux (it creates network "
            "namespaces, a bridge and iptables rules); run it with sudo, or drop "
            "--transparent for the rootless mode"
        )
        return True
    return False


def _print_ready(state: MeshState, console: Console) -> None:
    render.services_table(asdict(s) for s in state.services).print(console)
    for server_port, host_port in sorted(state.gateway_ports.items()):
        console.print(f"gateway port {server_port} → 127.0.0.1:{host_port}")  # HTTP or HTTPS
    print(f"gateway: {state.gateway}" if state.gateway else "gateway: none (no Gateway resource)")
    sys.stdout.flush()


def run_foreground(opts: UpOptions, console: Console, err: Console) -> int:
    from plait.local.runner import LocalMesh

    if _refuse_if_running(opts.root, err):
        return exitcodes.STARTUP_FAILED
    mesh = LocalMesh(opts, progress=lambda line: console.print(f"[cyan]▸[/] {line}"))
    for m in mesh.config_messages:
        err.print(f"[yellow]{m}[/]")

    async def main() -> int:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        current = asyncio.current_task()
        starting = True

        def on_signal() -> None:
            stop.set()
            if starting and current is not None:
                current.cancel()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal)
        try:
            try:
                state = await mesh.start()
            except PlaitError as exc:  # StartupError, and any other plait error on the way
                err.print(f"[red]error:[/] {exc}")
                return exitcodes.STARTUP_FAILED
            except asyncio.CancelledError:
                err.print("interrupted; everything started was stopped")
                return exitcodes.STARTUP_FAILED
            starting = False
            _print_ready(state, console)
            console.print("[green]mesh ready[/]; Ctrl-C stops it")
            code = exitcodes.OK
            try:
                await mesh.watch(stop)  # until stop; a reconcile in flight is abandoned
            except Exception as exc:  # noqa: BLE001 - a bug: stop the mesh, say why
                err.print(f"[red]error:[/] the running mesh failed ({exc!r}); stopping it")
                code = exitcodes.STARTUP_FAILED
            console.print("stopping…")
            await mesh.stop()  # ends what a reconcile began
            return code
        finally:
            clear_state(mesh.root)

    return asyncio.run(main())


def run_detached(opts: UpOptions, console: Console, err: Console) -> int:
    """Start a child `plait up` with the same options (its own session, output to
    up.log in the state directory); return once its mesh is ready or it failed."""
    directory = opts.root
    if _refuse_if_running(directory, err):
        return exitcodes.STARTUP_FAILED
    run_dir = directory / STATE_DIR
    run_dir.mkdir(parents=True, exist_ok=True)
    clear_state(directory)
    log_path = run_dir / UP_LOG
    with log_path.open("wb") as log:
        child = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [
                sys.executable,
                "-m",
                "plait",
                "up",
                str(directory),
                "--gateway-port",
                str(opts.gateway_port),
                "--timeout",
                str(opts.ready_timeout_s),
                "--cert-ttl",
                opts.cert_ttl,
                *(["--ca-dir", str(opts.ca_dir)] if opts.ca_dir is not None else []),
                *(["--transparent"] if opts.transparent else []),
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "COLUMNS": "160", "TERM": "dumb"},
        )
    deadline = time.monotonic() + opts.ready_timeout_s + 30
    shown = 0
    while True:
        shown = _echo_new_lines(log_path, shown, console)
        state = _already_running(directory) if state_path(directory).exists() else None
        if state is not None and state.phase == "ready":
            _print_ready(state, console)
            return exitcodes.OK
        code = child.poll()
        if code is not None or time.monotonic() > deadline:
            _echo_new_lines(log_path, shown, console)
            if code is None:
                child.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    child.wait(30)
            err.print(f"[red]error:[/] the mesh did not get ready; full log: {log_path}")
            return exitcodes.STARTUP_FAILED
        time.sleep(0.1)


def _echo_new_lines(path: Path, shown: int, console: Console) -> int:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return shown
    complete = lines[shown:]
    for line in complete:
        # Progress and problems only: the parent prints the summary table itself.
        if line.startswith(("▸", "error", "warning")) or "Error" in line:
            console.print(line, markup=False, highlight=False)
    return shown + len(complete)


def stop_detached(directory: Path, console: Console, err: Console) -> int:
    try:
        state = read_state(directory)
    except MeshStateError as exc:
        console.print(f"nothing to stop: {exc}")
        clear_state(directory)
        return _remove_pods(directory, err)
    console.print(f"stopping the mesh for {directory} (pid {state.pid})…")
    with contextlib.suppress(ProcessLookupError):
        os.kill(state.pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(state.pid, 0)
        except ProcessLookupError:
            clear_state(directory)
            console.print("stopped")
            return _remove_pods(directory, err)
        time.sleep(0.1)
    err.print(f"[red]error:[/] pid {state.pid} did not stop within 30 s; killing it")
    with contextlib.suppress(ProcessLookupError):
        os.kill(state.pid, signal.SIGKILL)
    clear_state(directory)
    _remove_pods(directory, err)
    return exitcodes.STARTUP_FAILED


def _remove_pods(directory: Path, err: Console) -> int:
    """Transparent mode: remove the pod network a mesh that did not stop cleanly left."""
    from plait.local import pods

    try:
        pods.remove_leftovers(directory / STATE_DIR)
    except PlaitError as exc:
        err.print(f"[red]error:[/] {exc}")
        return exitcodes.STARTUP_FAILED
    return exitcodes.OK
