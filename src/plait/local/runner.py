"""`plait up`: start the control plane, the ingress gateway and every replica with its sidecar.

Order and readiness:
1. the control plane (a child process, restarted if it dies; Envoys keep their config
   and reconnect meanwhile), ready when its xDS port accepts connections;
2. the gateway and, per replica, the app (PORT, HTTP_PROXY = its sidecar) and its
   sidecar, all at once; a replica joins the registry (and so gets traffic) once its
   app listens and its sidecar has ACKed its config — a readiness gate as in Kubernetes
   (a pod template annotated `sidecar.istio.io/inject: "false"` runs its app alone, reached
   at the app's own port in plain text, as a workload outside the mesh);
3. ready when every proxy reports every xDS type SYNCED at the control plane.
A failure at any step stops everything already started and raises StartupError.

While the mesh runs, `watch` owns the background work in one task group: reconciling
replicas with the Deployments on every change of the mesh directory (its events come
from the same `MeshDirectorySource` the control plane uses) and re-minting tokens. Each
failure is logged, reported as a progress line and in the state file's `problems` (so
`plait status` shows it), and retried with backoff; none ends the loop silently.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import math
import os
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from plait.agent.sidecar import SidecarAgent, SidecarOptions
from plait.agent.supervisor import SupervisorOptions
from plait.aio import Backoff, Stopped, retry, until
from plait.api.duration import parse_nanos
from plait.errors import EnvoyError, PodNetworkError, StartupError, WorkloadCertificateError
from plait.local import ingress, pods
from plait.local.accesslogs import access_log_path, app_log_path
from plait.local.identity import TOKEN_REFRESH_S, LocalIdentity
from plait.local.plan import Plan, ReplicaSpec, make_plan
from plait.local.ports import accepts, free_port
from plait.local.process import ManagedProcess
from plait.local.reconcile import diff_replicas
from plait.local.statefile import MeshState, ProxyEntry, ServiceEntry, write_state
from plait.local.status import fetch_json
from plait.local.upoptions import UpOptions
from plait.model.proxy import Proxy, ProxyKind, Traffic, node_id
from plait.model.registry import PortMap, Resolution, WorkloadInstance
from plait.model.snapshot import build_snapshot
from plait.podnet import Pod
from plait.sources.directory import ConfigView
from plait.sources.events import ConfigChanged, SourceEvent
from plait.sources.meshdir import MeshDirectorySource
from plait.sources.workloads import STATE_DIR, write_registry
from plait.telemetry.exporter import MeshTelemetry, Reporter

HOST = "127.0.0.1"
Progress = Callable[[str], None]
log = logging.getLogger(__name__)

RECONCILE_BACKOFF = Backoff(first=1.0, most=30.0, stable=math.inf)
"""A failed reconcile is tried again (without a new edit) after 1 s, 2 s, … 30 s; the
delay starts again at 1 s after one succeeds."""
TOKEN_RETRY_S = 60.0
"""After a failed re-mint, the next try comes this soon rather than an hour later."""


@dataclass
class Replica:
    spec: ReplicaSpec
    proxy: Proxy
    app: ManagedProcess
    sidecar: SidecarAgent | None  # the agent (certificate, SDS, Envoy); None: no sidecar
    pod: Pod | None = None  # transparent mode: its network namespace
    registered: bool = False

    @property
    def address(self) -> str:
        """Where peers reach it: its pod IP, or loopback."""
        return str(self.pod.ip) if self.pod is not None else HOST

    @property
    def port(self) -> int:
        """The port peers connect to: the app's own in a pod (captured), else the sidecar's."""
        port = self.proxy.app_port if self.pod is not None else self.proxy.inbound_port
        return port or 0


@dataclass
class Started:
    controlplane: ManagedProcess | None = None
    gateway: SidecarAgent | None = None
    replicas: list[Replica] = field(default_factory=list)


async def _until(
    check: Callable[[], Awaitable[bool]], timeout: float, what: str, interval: float = 0.05
) -> None:
    """Poll another process's state (a port, the control plane's status) until `check`."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise StartupError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(interval)


class LocalMesh:
    """Everything `plait up DIR` runs; `start()` then `wait()`, and `stop()` in a finally."""

    def __init__(self, opts: UpOptions, progress: Progress) -> None:
        self.opts = opts
        self.root = opts.root.resolve()
        self.progress = progress
        self.run_dir = self.root / STATE_DIR
        self.directory = MeshDirectorySource(opts.root)
        view = self.directory.loader.load()
        self.config_messages = view.messages
        self.snapshot = build_snapshot(view.resources, [], 0)
        self.plan = make_plan(view.resources, self.snapshot)
        self.started = Started()
        self._gateway_generation = 0  # replacements of the gateway Envoy (local.ingress)
        self.xds_port = free_port()
        self.xds_host = HOST  # transparent mode: the host's address on the pod bridge
        self.pods: pods.Pods | None = None
        self.cluster_ips: dict[str, str] = {}  # transparent mode: service hostname → IP
        self.debug_port = free_port()
        self.ca_port = free_port()
        self.identity = LocalIdentity(
            self.run_dir,
            self.snapshot.mesh.trust_domain,
            dt.timedelta(seconds=parse_nanos(opts.cert_ttl) / 1e9),
            opts.ca_dir,
        )
        self.telemetry = MeshTelemetry()
        self.state = MeshState(
            pid=os.getpid(),
            phase="starting",
            root=str(self.root),
            xds=f"{HOST}:{self.xds_port}",
            status_url=f"http://{HOST}:{self.debug_port}/status",
            ca=self.ca_url,
            controlplane_log=str(self.run_dir / "controlplane.log"),
        )

    # -- start -----------------------------------------------------------------------

    async def _start_controlplane(self) -> None:
        self.progress(f"control plane: starting (xDS on {self.xds_host}:{self.xds_port})")
        cp = ManagedProcess(
            "controlplane",
            [
                sys.executable,
                "-m",
                "plait",
                "controlplane",
                str(self.root),
                "--xds-host",
                self.xds_host,
                "--xds-port",
                str(self.xds_port),
                "--status-port",
                str(self.debug_port),
                "--ca-port",
                str(self.ca_port),
                "--token-key",
                str(self.identity.public_key),
                "--cert-ttl",
                self.opts.cert_ttl,
                "--ca-dir",
                str(self.identity.ca_dir),
            ],
            env=dict(os.environ),
            cwd=self.root,
            log_path=Path(self.state.controlplane_log),
        )
        self.started.controlplane = cp
        await cp.start()

        async def listening() -> bool:
            ports = (self.debug_port, self.ca_port)
            xds = await accepts(self.xds_host, self.xds_port)
            return xds and all([await accepts(HOST, p) for p in ports])

        await _until(
            listening,
            20,
            "the control plane to listen (see " + self.state.controlplane_log + ")",
        )

    @property
    def ca_url(self) -> str:
        return f"https://{HOST}:{self.ca_port}"

    def _agent(
        self, proxy: Proxy, instance: str, name: str | None = None, pod: Pod | None = None
    ) -> SidecarAgent:
        """One proxy's agent: its token, key and certificate, SDS socket, and Envoy (in
        `pod` if given: see `local.pods`)."""
        name = name or proxy.id.split("~", 1)[1]
        token = self.identity.token_file(instance, proxy.namespace, proxy.service_account)
        in_pod: dict[str, Any] = {}
        if pod is not None:
            in_pod = {
                "admin_host": str(pod.ip),
                "admin_port": pods.ADMIN_PORT,
                "supervisor": SupervisorOptions(wrapper=pods.envoy_wrapper(pod)),
            }
        return SidecarAgent(
            SidecarOptions(
                proxy=proxy,
                run_dir=self.run_dir / "envoy",
                ca=self.identity.ca_options(proxy, token, self.ca_url),
                sds_socket=self.identity.sds_socket(name),
                xds_host=self.xds_host,
                xds_port=self.xds_port,
                name=name,
                **in_pod,
            )
        )

    async def _replicas(self, specs: Sequence[ReplicaSpec]) -> list[Replica]:
        """New replicas (in transparent mode each in a new pod with capture applied)."""
        if self.pods is None:
            return [self._replica(spec) for spec in specs]
        made = []
        for spec in specs:
            pod = await self.pods.add(spec.instance, spec.namespace, capture=spec.sidecar)
            made.append(self._pod_replica(spec, pod))
        return made

    def _pod_replica(self, spec: ReplicaSpec, pod: Pod) -> Replica:
        """A replica in its pod: no proxy variables; its sidecar is captured (REDIRECT)."""
        app_port = free_port()
        proxy = Proxy(
            id=node_id(ProxyKind.SIDECAR, spec.instance, spec.namespace),
            kind=ProxyKind.SIDECAR,
            workload=spec.workload,
            namespace=spec.namespace,
            service_account=spec.service_account,
            labels=spec.labels,
            address=str(pod.ip),
            app_port=app_port,
            access_log=str(access_log_path(self.run_dir, spec.instance)) if spec.sidecar else None,
            traffic=Traffic.CAPTURED,
        )
        app = ManagedProcess(
            spec.instance,
            pod.exec_argv(spec.command),
            env=self._app_env(spec, app_port, {"POD_IP": str(pod.ip)}),
            cwd=self.root,
            log_path=app_log_path(self.run_dir, spec.instance),
        )
        agent = self._agent(proxy, spec.instance, pod=pod) if spec.sidecar else None
        return Replica(spec, proxy, app, agent, pod)

    def _app_env(self, spec: ReplicaSpec, port: int, proxy_env: dict[str, str]) -> dict[str, str]:
        return {
            **os.environ,
            **dict(spec.env),
            "PORT": str(port),
            **proxy_env,
            "PLAIT_INSTANCE": spec.instance,
            "PLAIT_WORKLOAD": spec.workload,
            "PLAIT_NAMESPACE": spec.namespace,
            "PYTHONUNBUFFERED": "1",
        }

    def _replica(self, spec: ReplicaSpec) -> Replica:
        app_port, inbound, outbound = free_port(), free_port(), free_port()
        if not spec.sidecar:  # `sidecar.istio.io/inject: "false"`: reached at its own port
            inbound, outbound = app_port, 0
        proxy = Proxy(
            id=node_id(ProxyKind.SIDECAR, spec.instance, spec.namespace),
            kind=ProxyKind.SIDECAR,
            workload=spec.workload,
            namespace=spec.namespace,
            service_account=spec.service_account,
            labels=spec.labels,
            address=HOST,
            inbound_port=inbound,
            app_port=app_port,
            outbound_port=outbound or None,
            access_log=str(access_log_path(self.run_dir, spec.instance)) if spec.sidecar else None,
        )
        env = self._app_env(spec, app_port, _proxy_env(outbound) if spec.sidecar else {})
        app = ManagedProcess(
            spec.instance,
            spec.command,
            env=env,
            cwd=self.root,
            log_path=app_log_path(self.run_dir, spec.instance),
        )
        agent = self._agent(proxy, spec.instance) if spec.sidecar else None
        return Replica(spec, proxy, app, agent)

    async def _start_replica(self, r: Replica) -> None:
        if not r.spec.command:
            raise StartupError(f"Deployment {r.spec.workload}: its first container has no command")
        try:
            await r.app.start()
        except OSError as exc:
            raise StartupError(
                f"{r.spec.instance}: cannot run {r.spec.command[0]!r}: {exc}"
            ) from exc
        if r.sidecar is not None:
            await r.sidecar.start()
            await self._export(r.sidecar)
        assert r.proxy.app_port is not None
        port = r.proxy.app_port

        async def app_listens() -> bool:
            if r.pod is not None:  # a connect from the host would be captured: ask the kernel
                return pods.listens(r.app.pid, port)
            return await accepts(HOST, port)

        await _until(
            app_listens,
            self.opts.ready_timeout_s,
            f"{r.spec.instance} to listen on $PORT={port} (see {r.app.log_path})",
        )
        if r.sidecar is not None:
            await r.sidecar.wait_ready(self.opts.ready_timeout_s)
        r.registered = True
        self._write_registry()
        where = f"sidecar :{r.proxy.inbound_port}" if r.sidecar is not None else "no sidecar"
        if r.pod is not None:
            where = f"pod {r.pod.ip}, {'captured' if r.sidecar is not None else 'no sidecar'}"
        self.progress(f"{r.spec.instance}: ready (app :{port}, {where})")

    def _write_registry(self) -> None:
        write_registry(self.root, self._registered(), self.cluster_ips)

    def _registered(self) -> list[WorkloadInstance]:
        """The replicas in the registry: ready, and not leaving."""
        return [
            WorkloadInstance(
                name=r.spec.instance,
                workload=r.spec.workload,
                namespace=r.spec.namespace,
                labels=r.spec.labels,
                service_account=r.spec.service_account,
                address=r.address,
                ports=PortMap.all_to(r.port),  # every service port
                sidecar=r.sidecar is not None,
            )
            for r in self.started.replicas
            if r.registered
        ]

    def _gateway_agent(self, ports: list[tuple[int, int]], generation: int = 0) -> SidecarAgent:
        """The gateway's agent; each replacement (`generation` ≥ 1) has its own files."""
        log = access_log_path(self.run_dir, ingress.NAME)  # shared by every generation
        proxy = replace(ingress.gateway_proxy(ports), access_log=str(log))
        name = ingress.gateway_name(generation)
        return self._agent(proxy, name, name)

    async def _start_gateway(self, ports: list[tuple[int, int]]) -> None:
        gw = self._gateway_agent(ports)
        self.started.gateway = gw
        await gw.start()
        await self._export(gw)
        await gw.wait_ready(self.opts.ready_timeout_s)
        self.progress(f"ingress gateway: ready on {', '.join(f'{HOST}:{h}' for _, h in ports)}")

    async def _update_gateway(self, plan: Plan) -> None:
        """Serve Gateway server ports added while the mesh runs (see `local.ingress`):
        a new gateway Envoy with the larger port map, then the old one drains."""
        current = {int(s): h for s, h in self.state.gateway_ports.items()}
        if not ingress.has_new_ports(plan, current):
            return
        ports = ingress.host_ports(plan, current, self.opts.gateway_port)
        self._gateway_generation += 1
        new = self._gateway_agent(ports, self._gateway_generation)
        try:
            await new.start()
            await self._export(new)
            await new.wait_ready(self.opts.ready_timeout_s)
        except BaseException:
            await new.stop()
            await self.telemetry.detach(new.envoy.name)
            raise
        old, self.started.gateway = self.started.gateway, new
        self.state.gateway_ports = {str(s): h for s, h in ports}
        self.state.gateway = ingress.gateway_url(plan, dict(ports))
        self.state.proxies = self._proxy_entries()
        await self._wait_synced()  # the new Envoy (same node id) has ACKed every port's config
        if old is not None:
            await old.stop()
            await self.telemetry.detach(old.envoy.name)
        write_state(self.root, self.state)
        self.progress(f"ingress gateway: now on {', '.join(f'{HOST}:{h}' for _, h in ports)}")

    async def start(self) -> MeshState:
        try:
            try:
                return await self._start()
            except (EnvoyError, WorkloadCertificateError) as exc:
                raise StartupError(str(exc)) from exc
        except BaseException as exc:
            self.state.phase = "failed"
            self.state.error = str(exc)
            write_state(self.root, self.state)
            await self.stop()
            raise

    async def _start(self) -> MeshState:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        write_registry(self.root, [])
        ports = ingress.host_ports(self.plan, {}, self.opts.gateway_port)
        write_state(self.root, self.state)
        if self.opts.transparent:
            await self._start_pods()
        await self._start_controlplane()
        self.started.replicas = await self._replicas(self.plan.replicas)
        self.progress(f"starting {len(self.started.replicas)} replicas with sidecars")
        tasks = [self._start_replica(r) for r in self.started.replicas]
        if ports:
            tasks.append(self._start_gateway(ports))
        await _gather_or_cancel(tasks)
        self.state.gateway_ports = {str(s): h for s, h in ports}
        self.state.gateway = ingress.gateway_url(self.plan, dict(ports))
        self.state.proxies = self._proxy_entries()
        self.state.services = self._service_entries()
        await self._wait_synced()
        self.state.phase = "ready"
        write_state(self.root, self.state)
        return self.state

    async def _start_pods(self) -> None:
        """Transparent mode: the pod bridge, and a cluster IP per Service (before any pod)."""
        self.state.mode = "transparent"
        try:
            self.pods = await asyncio.to_thread(pods.Pods, self.run_dir)
        except PodNetworkError as exc:
            raise StartupError(f"cannot make the pod network: {exc}") from exc
        self.xds_host = self.pods.host_address
        self.state.xds = f"{self.xds_host}:{self.xds_port}"
        self.cluster_ips = self.pods.sync_services(self.snapshot.services.values())
        write_registry(self.root, [], self.cluster_ips)
        self.progress(
            f"pod network {self.pods.net.pod_cidr} (cluster IPs {self.pods.net.service_cidr})"
        )

    def _service_entries(self) -> list[ServiceEntry]:
        out = []
        for svc in sorted(self.snapshot.services.values(), key=lambda s: s.hostname):
            if svc.external or svc.resolution != Resolution.REGISTRY:
                continue
            reps = [
                r
                for r in self.started.replicas
                if r.spec.namespace == svc.namespace
                and svc.selector
                and r.spec.labels.matches(svc.selector)
            ]
            out.append(
                ServiceEntry(
                    name=svc.name,
                    namespace=svc.namespace,
                    urls=[f"http://{svc.name}:{p.port}" for p in svc.ports if p.protocol.is_http],
                    replicas=[r.spec.instance for r in reps],
                    endpoints=[f"{r.address}:{r.port}" for r in reps],
                    clusterIP=self.cluster_ips.get(svc.hostname),
                )
            )
        return out

    def _proxy_entries(self) -> list[ProxyEntry]:
        agents: list[tuple[SidecarAgent, ManagedProcess | None, Pod | None]] = []
        if self.started.gateway is not None:
            agents.append((self.started.gateway, None, None))
        agents += [
            (r.sidecar, r.app, r.pod) for r in self.started.replicas if r.sidecar is not None
        ]
        return [
            _entry(agent, app, self.telemetry.url(agent.envoy.name), pod)
            for agent, app, pod in agents
        ]

    async def _export(self, agent: SidecarAgent) -> None:
        """Serve the agent's Envoy's metrics under Istio's names (`telemetry.exporter`)."""
        await self.telemetry.attach(Reporter(agent.envoy.name, lambda: agent.envoy.admin_url))

    async def _wait_synced(self) -> None:
        expected = {e.name for e in self.state.proxies}
        instances = {r.spec.instance for r in self.started.replicas if r.registered}
        last: dict[str, Any] = {}

        async def synced() -> bool:
            """Every proxy ACKed the generation that has every replica's endpoints."""
            nonlocal last
            try:
                last = await fetch_json(self.state.status_url, timeout=1.0)
            except (OSError, ValueError):
                return False
            cp = last.get("controlPlane", {})
            if instances != set(cp.get("instances", [])):
                return False  # the control plane has not read the current registry yet
            done = {
                p["name"]
                for p in last.get("proxies", [])
                if p.get("connected")
                and (p.get("generation") or 0) >= cp.get("generation", 0)
                and all(v in ("SYNCED", "NOT SENT") for v in p["sync"].values())
                and p["sync"].get("cds") == "SYNCED"
                and p["sync"].get("lds") == "SYNCED"
            }
            return expected <= done

        self.progress("waiting for every proxy to ACK its configuration")
        try:
            await _until(
                synced, self.opts.ready_timeout_s, "every proxy to ACK its configuration", 0.1
            )
        except StartupError as exc:
            nacks = [f"{p['name']}: {p['nack']}" for p in last.get("proxies", []) if p.get("nack")]
            raise StartupError(
                str(exc) + ("; NACKs: " + "; ".join(nacks) if nacks else "")
            ) from exc

    # -- run and stop -----------------------------------------------------------------

    async def watch(self, stop: asyncio.Event) -> None:
        """Until `stop`: keep the replicas in line with the Deployments, and re-mint tokens.

        The control plane applies routing changes itself; this starts and stops processes.
        Cancelling it abandons a reconcile in flight (`stop()` ends what it began).
        """
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._reconcile_loop(), name="reconcile")
                tg.create_task(self._refresh_tokens(), name="token re-minting")
                tg.create_task(until(stop), name="until stopped")
        except* Stopped:
            pass

    async def _reconcile_loop(self) -> None:
        """Reconcile with the newest config view; a failure is reported and retried with
        backoff (a new edit retries at once)."""
        latest: ConfigView | None = None
        changed = asyncio.Event()

        def emit(event: SourceEvent) -> None:
            nonlocal latest
            if isinstance(event, ConfigChanged):
                latest = event.view
                changed.set()
                self._set_problem("directory", None)  # it runs (again)

        ready = asyncio.Event()
        async with asyncio.TaskGroup() as tg:
            tg.create_task(
                retry(
                    "mesh directory",
                    lambda: self.directory.run(emit, ready),
                    self._problem("directory"),
                ),
                name="mesh directory",
            )
            delay: float | None = None
            while True:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await changed.wait()
                changed.clear()
                if latest is None:
                    continue
                began = time.monotonic()
                try:
                    await self.reconcile(latest)
                except Exception as exc:  # noqa: BLE001 - reported, retried; never a silent end
                    delay = RECONCILE_BACKOFF.next(delay, time.monotonic() - began)
                    log.exception("reconcile failed")
                    self.progress(f"error: {exc} (trying again in {delay:.0f}s)")
                    self._set_problem("replicas", f"{type(exc).__name__}: {exc}")
                    continue
                delay = None
                self._set_problem("replicas", None)

    def _problem(self, task: str) -> Callable[[str], None]:
        return lambda message: self._set_problem(task, message)

    def _set_problem(self, task: str, message: str | None) -> None:
        """Record (or clear) what a background task failed with; `plait status` shows it."""
        if self.state.problems.get(task) == message:
            return
        if message is None:
            self.state.problems.pop(task, None)
        else:
            self.state.problems[task] = message
        with contextlib.suppress(OSError):
            write_state(self.root, self.state)

    async def reconcile(self, view: ConfigView) -> None:
        """Stop replicas that are gone or changed (after traffic has moved off them), then
        start new ones; each joins the registry once ready, as at start. A new replica
        that fails to start is stopped and dropped, so the next reconcile starts it again."""
        self.snapshot = build_snapshot(view.resources, [], 0)
        plan = make_plan(view.resources, self.snapshot)
        if self.pods is not None:
            ips = self.pods.sync_services(self.snapshot.services.values())
            if ips != self.cluster_ips:
                self.cluster_ips = ips
                self._write_registry()
        await self._update_gateway(plan)
        change = diff_replicas([r.spec for r in self.started.replicas], plan.replicas)
        if not change:
            return
        leaving = [r for r in self.started.replicas if r.spec.instance in change.stop]
        for r in leaving:
            r.registered = False
        self._write_registry()
        await self._wait_synced()  # no proxy sends to the leaving replicas any more
        await self._drop(leaving)
        joining = await self._replicas(change.start)
        self.started.replicas += joining
        try:
            await _gather_or_cancel([self._start_replica(r) for r in joining])
        except BaseException:
            await self._drop(joining)
            raise
        finally:
            self.state.proxies = self._proxy_entries()
            self.state.services = self._service_entries()
            write_state(self.root, self.state)
        await self._wait_synced()
        gone = ", ".join(r.spec.instance for r in leaving) or "none"
        new = ", ".join(r.spec.instance for r in joining) or "none"
        self.progress(f"replicas updated: stopped {gone}; started {new}")

    async def _drop(self, replicas: list[Replica]) -> None:
        """Stop these replicas and forget them (they are out of the registry already)."""
        await asyncio.gather(*_stops(replicas), return_exceptions=True)
        for r in replicas:
            if r.sidecar is not None:
                await self.telemetry.detach(r.sidecar.envoy.name)
            if r.pod is not None and self.pods is not None:
                await self.pods.remove(r.pod)
            self.identity.forget(r.spec.instance)
        self.started.replicas = [r for r in self.started.replicas if r not in replicas]

    async def stop(self) -> None:
        """Stop in reverse: sidecars drain first, then apps, gateway, control plane."""
        if self.state.phase != "failed":
            self.state.phase = "stopping"
            with contextlib.suppress(OSError):
                write_state(self.root, self.state)
        s = self.started
        await asyncio.gather(
            *_stops(s.replicas),
            return_exceptions=True,
        )
        if s.gateway is not None:
            await s.gateway.stop()
        if s.controlplane is not None:
            await s.controlplane.stop()
        await self.telemetry.close()
        if self.pods is not None:
            try:
                await asyncio.to_thread(self.pods.close)
            except PodNetworkError as exc:
                self.progress(f"error: {exc}")
        self.identity.cleanup()
        with contextlib.suppress(OSError):
            write_registry(self.root, [])

    async def _refresh_tokens(self) -> None:
        """Re-mint every replica's token before it expires (agents read it per request).
        A failure (a full disk) is reported and tried again within `TOKEN_RETRY_S`."""
        wait = TOKEN_REFRESH_S
        while True:
            await asyncio.sleep(wait)
            try:
                self.identity.refresh_tokens()
            except Exception as exc:  # noqa: BLE001 - tokens lapse in 24 h if this stops
                log.exception("cannot re-mint workload tokens")
                self.progress(f"error: cannot re-mint workload tokens: {exc}")
                self._set_problem("tokens", f"{type(exc).__name__}: {exc}")
                wait = min(TOKEN_RETRY_S, TOKEN_REFRESH_S)
                continue
            self._set_problem("tokens", None)
            wait = TOKEN_REFRESH_S


def _entry(
    agent: SidecarAgent, app: ManagedProcess | None, metrics: str | None, pod: Pod | None = None
) -> ProxyEntry:
    envoy = agent.envoy
    p = envoy.config.proxy
    sidecar = p.kind == ProxyKind.SIDECAR
    if pod is not None:  # captured: peers (and a plaintext client) try podIP:port
        return ProxyEntry(
            name=p.id,
            kind=p.kind.value,
            workload=p.workload,
            namespace=p.namespace,
            serviceAccount=p.service_account,
            labels=p.labels.as_dict(),
            admin=_hostport(envoy.admin_url),
            inbound=f"{pod.ip}:{p.app_port}",
            outbound=None,
            app=f"{pod.ip}:{p.app_port}",
            envoyLog=str(envoy.log_path),
            appLog=str(app.log_path) if app is not None else None,
            accessLog=p.access_log,
            identity=agent.options.ca.identity.uri,
            podIP=str(pod.ip),
            metrics=metrics or "",
        )
    return ProxyEntry(
        name=p.id,
        kind=p.kind.value,
        workload=p.workload,
        namespace=p.namespace,
        serviceAccount=p.service_account,
        labels=p.labels.as_dict(),
        admin=_hostport(envoy.admin_url),
        inbound=f"{HOST}:{p.inbound_port}" if sidecar else None,
        outbound=f"{HOST}:{p.outbound_port}" if sidecar else None,
        app=f"{HOST}:{p.app_port}" if sidecar else None,
        envoyLog=str(envoy.log_path),
        appLog=str(app.log_path) if app is not None else None,
        accessLog=p.access_log,
        identity=agent.options.ca.identity.uri,
        metrics=metrics or "",
    )


def _proxy_env(outbound: int) -> dict[str, str]:
    """How an app reaches its sidecar: HTTP_PROXY, and PLAIT_OUTBOUND for clients that
    cannot use an HTTP proxy (gRPC: they dial it and name the service in :authority,
    docs/traffic/protocols.md)."""
    url = f"http://{HOST}:{outbound}"
    return {
        "HTTP_PROXY": url,
        "http_proxy": url,
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
        "PLAIT_OUTBOUND": f"{HOST}:{outbound}",
    }


def _stops(replicas: list[Replica]) -> list[Any]:
    """Stopping replicas: their sidecars (which drain) and their apps, all at once."""
    return [
        *(r.sidecar.stop() for r in replicas if r.sidecar is not None),
        *(r.app.stop() for r in replicas),
    ]


def _hostport(url: str | None) -> str:
    return (url or "").removeprefix("http://").rstrip("/")


async def _gather_or_cancel(coros: list[Coroutine[Any, Any, None]]) -> None:
    """Run all; on the first failure cancel the rest and re-raise that failure (the
    first, not an ExceptionGroup: callers map it to a message)."""
    try:
        async with asyncio.TaskGroup() as tg:
            for c in coros:
                tg.create_task(c)
    except BaseExceptionGroup as group:
        raise group.exceptions[0] from None
