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

While the mesh runs, `watch` owns the background work (`local.background`): reconciling
replicas with the Deployments on every change of the mesh directory, and re-minting tokens.

The parts live beside this module, one responsibility each: `cpchild` (the control-plane
child), `agents` (sidecar agents), `replicas` (a replica's processes), `entries` (the state
file's rows), `synced` (when every proxy has ACKed) and `waits`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from plait.agent.sidecar import SidecarAgent
from plait.api.duration import parse_nanos
from plait.errors import EnvoyError, PodNetworkError, StartupError, WorkloadCertificateError
from plait.local import background, ingress, pods, statefile
from plait.local.accesslogs import access_log_path
from plait.local.agents import AgentSite, sidecar_agent
from plait.local.cpchild import ControlPlaneChild, controlplane_process, wait_listening
from plait.local.entries import proxy_entries, service_entries
from plait.local.identity import LocalIdentity
from plait.local.plan import Plan, ReplicaSpec, make_plan
from plait.local.ports import accepts, free_port
from plait.local.process import ManagedProcess
from plait.local.reconcile import diff_replicas
from plait.local.replicas import (
    Replica,
    ReplicaSite,
    host_replica,
    pod_replica,
    registry_instances,
    stops,
)
from plait.local.statefile import MeshState, write_state
from plait.local.synced import wait_synced
from plait.local.upoptions import UpOptions
from plait.local.waits import gather_or_cancel, poll_until
from plait.model.proxy import Proxy
from plait.model.snapshot import build_snapshot
from plait.podnet import Pod
from plait.sources.directory import ConfigView
from plait.sources.meshdir import MeshDirectorySource
from plait.sources.workloads import STATE_DIR, write_registry
from plait.telemetry.exporter import MeshTelemetry, Reporter

HOST = "127.0.0.1"
Progress = Callable[[str], None]


@dataclass
class Started:
    controlplane: ManagedProcess | None = None
    gateway: SidecarAgent | None = None
    replicas: list[Replica] = field(default_factory=list)


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
        child = ControlPlaneChild(
            root=self.root,
            xds_host=self.xds_host,
            xds_port=self.xds_port,
            status_port=self.debug_port,
            ca_port=self.ca_port,
            token_key=self.identity.public_key,
            cert_ttl=self.opts.cert_ttl,
            ca_dir=self.identity.ca_dir,
            log_path=Path(self.state.controlplane_log),
        )
        cp = controlplane_process(child)
        self.started.controlplane = cp
        await cp.start()
        await wait_listening(child)

    @property
    def ca_url(self) -> str:
        return f"https://{HOST}:{self.ca_port}"

    def _agent(
        self, proxy: Proxy, instance: str, name: str | None = None, pod: Pod | None = None
    ) -> SidecarAgent:
        site = AgentSite(self.identity, self.run_dir, self.ca_url, self.xds_host, self.xds_port)
        return sidecar_agent(site, proxy, instance, name, pod)

    def _agent_for(self, proxy: Proxy, instance: str, pod: Pod | None) -> SidecarAgent:
        return self._agent(proxy, instance, pod=pod)

    async def _replicas(self, specs: Sequence[ReplicaSpec]) -> list[Replica]:
        """New replicas (in transparent mode each in a new pod with capture applied)."""
        site = ReplicaSite(self.root, self.run_dir)
        if self.pods is None:
            return [host_replica(spec, site, self._agent_for) for spec in specs]
        made = []
        for spec in specs:
            pod = await self.pods.add(spec.instance, spec.namespace, spec.sidecar, spec.dns)
            made.append(pod_replica(spec, pod, site, self._agent_for))
        return made

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

        await poll_until(
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
        write_registry(self.root, registry_instances(self.started.replicas), self.cluster_ips)

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
        await gather_or_cancel(tasks)
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

    def _service_entries(self) -> list[statefile.ServiceEntry]:
        return service_entries(
            self.snapshot.services.values(), self.started.replicas, self.cluster_ips
        )

    def _proxy_entries(self) -> list[statefile.ProxyEntry]:
        return proxy_entries(self.started.gateway, self.started.replicas, self.telemetry)

    async def _export(self, agent: SidecarAgent) -> None:
        """Serve the agent's Envoy's metrics under Istio's names (`telemetry.exporter`)."""
        await self.telemetry.attach(Reporter(agent.envoy.name, lambda: agent.envoy.admin_url))

    async def _wait_synced(self) -> None:
        """Every proxy ACKed the generation that has every registered replica's endpoints."""
        expected = {e.name for e in self.state.proxies}
        instances = {r.spec.instance for r in self.started.replicas if r.registered}
        self.progress("waiting for every proxy to ACK its configuration")
        await wait_synced(self.state.status_url, expected, instances, self.opts.ready_timeout_s)

    # -- run and stop -----------------------------------------------------------------

    async def watch(self, stop: asyncio.Event) -> None:
        """Until `stop`: keep the replicas in line with the Deployments, and re-mint tokens
        (`local.background`). The control plane applies routing changes itself; this
        starts and stops processes."""
        problems = background.Problems(self.root, self.state)
        await background.watch(
            stop, self.directory, self.reconcile, self.identity, problems, self.progress
        )

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
            await gather_or_cancel([self._start_replica(r) for r in joining])
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
        await asyncio.gather(*stops(replicas), return_exceptions=True)
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
            *stops(s.replicas),
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
