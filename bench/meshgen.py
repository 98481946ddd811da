"""Synthetic meshes as Istio/Kubernetes YAML, the registry behind them, and their proxies.

The YAML goes through plait's real loader (`api.load_text`) and snapshot builder; nothing
here builds Envoy resources. A mesh of N services has, per service, a Service on port
8080 (named `http`) and a Deployment; service 0 also has a DestinationRule with subsets
v1/v2 and a VirtualService splitting traffic between them, the resource a canary edits.
Proxies are sidecars of the services' replicas: proxy j is replica j // N of service
j % N; a service with no proxy still has one registered replica, so every cluster has
endpoints. Instances of the services a benchmark will add later (`extra-K`) are
registered from the start, so adding a service is a single YAML change.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from plait.api import Loaded, load_text
from plait.errors import Severity
from plait.model.labels import Labels
from plait.model.proxy import Proxy, ProxyKind, node_id
from plait.model.registry import PortMap, WorkloadInstance
from plait.model.snapshot import MeshSnapshot, build_snapshot, with_instances
from plait.model.withconfig import with_config

NAMESPACE = "default"
SERVICE_PORT = 8080
ROUTING_FILE = "routing.yaml"


def service_yaml(name: str) -> str:
    return f"""apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: {NAMESPACE}}}
spec:
  selector: {{app: {name}}}
  ports:
    - {{name: http, port: {SERVICE_PORT}, targetPort: 8080}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: {NAMESPACE}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}, version: v1}}}}
    spec:
      serviceAccountName: {name}
      containers:
        - {{name: app, command: [python, -m, app]}}
"""


def routing_yaml(host: str, v1_weight: int) -> str:
    """A DestinationRule (v1/v2 by the `version` label) and a weighted VirtualService."""
    return f"""apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: {host}, namespace: {NAMESPACE}}}
spec:
  host: {host}
  subsets:
    - {{name: v1, labels: {{version: v1}}}}
    - {{name: v2, labels: {{version: v2}}}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: {host}, namespace: {NAMESPACE}}}
spec:
  hosts: [{host}]
  http:
    - route:
        - destination: {{host: {host}, subset: v1}}
          weight: {v1_weight}
        - destination: {{host: {host}, subset: v2}}
          weight: {100 - v1_weight}
"""


def load(files: dict[str, str]) -> list[Loaded]:
    """Every resource of `files` (name → YAML) through plait's loader; errors raise."""
    out: list[Loaded] = []
    for name, text in sorted(files.items()):
        result = load_text(text, name)
        errors = [m for m in result.messages if m.severity == Severity.ERROR]
        if errors:
            raise ValueError(f"{name}: {errors[0]}")
        out.extend(result.resources)
    return out


def sidecar(instance: str, workload: str, labels: Labels, ports: tuple[int, int, int]) -> Proxy:
    """A sidecar as local mode makes one: (inbound, app, outbound) host ports."""
    inbound, app, outbound = ports
    return Proxy(
        id=node_id(ProxyKind.SIDECAR, instance, NAMESPACE),
        kind=ProxyKind.SIDECAR,
        workload=workload,
        namespace=NAMESPACE,
        service_account=workload,
        labels=labels,
        address="127.0.0.1",
        inbound_port=inbound,
        app_port=app,
        outbound_port=outbound,
    )


def instance_of(proxy: Proxy) -> WorkloadInstance:
    """The registry entry local mode writes for a ready replica."""
    assert proxy.inbound_port is not None
    return WorkloadInstance(
        name=proxy.id.split("~", 1)[1].rsplit(".", 1)[0],
        workload=proxy.workload,
        namespace=proxy.namespace,
        labels=proxy.labels,
        service_account=proxy.service_account,
        address=proxy.address,
        ports=PortMap.all_to(proxy.inbound_port),
    )


PortSource = Callable[[], tuple[int, int, int]]


def fake_ports(start: int = 20000) -> PortSource:
    """Distinct port numbers nothing binds (for simulated proxies)."""
    counter = iter(range(start, 65000, 3))

    def next_ports() -> tuple[int, int, int]:
        p = next(counter)
        return p, p + 1, p + 2

    return next_ports


@dataclass
class SyntheticMesh:
    """N services, P sidecars, and the files a mesh directory would hold."""

    services: int
    proxies: Sequence[Proxy]
    registry: Sequence[WorkloadInstance]
    files: dict[str, str]

    @staticmethod
    def name(i: int) -> str:
        return f"svc-{i:04d}"

    @classmethod
    def make(
        cls, services: int, proxies: int, ports: PortSource, extras: int = 20
    ) -> SyntheticMesh:
        files = {f"services/{cls.name(i)}.yaml": service_yaml(cls.name(i)) for i in range(services)}
        files[ROUTING_FILE] = routing_yaml(cls.name(0), 90)
        made: list[Proxy] = []
        for j in range(proxies):
            svc, replica = cls.name(j % services), j // services
            version = "v1" if replica % 2 == 0 else "v2"
            labels = Labels.of({"app": svc, "version": version})
            made.append(sidecar(f"{svc}-{replica}", svc, labels, ports()))
        registry = [instance_of(p) for p in made]
        idle = [cls.name(i) for i in range(proxies, services)]
        idle += [f"extra-{k:03d}" for k in range(extras)]
        for svc in idle:
            labels = Labels.of({"app": svc, "version": "v1"})
            registry.append(instance_of(sidecar(f"{svc}-0", svc, labels, ports())))
        return cls(services, made, registry, files)

    @staticmethod
    def extra_file(k: int) -> tuple[str, str]:
        """The file that adds service `extra-K` (its instance is registered already)."""
        name = f"extra-{k:03d}"
        return f"services/{name}.yaml", service_yaml(name)

    @classmethod
    def routing_file(cls, v1_weight: int) -> tuple[str, str]:
        return ROUTING_FILE, routing_yaml(cls.name(0), v1_weight)

    def write(self, root: Path) -> None:
        for name, text in self.files.items():
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)


class SnapshotBuilder:
    """Snapshots of a changing set of files, re-parsing only the files that changed (as an
    incremental config source would), built as `plait.controlplane.builder` builds them: a
    VirtualService / DestinationRule change on the config fast path (`with_config`), any
    other config change in full (`build_snapshot`), a registry change on the endpoint fast
    path (`with_instances`)."""

    def __init__(self, files: dict[str, str], registry: Iterable[WorkloadInstance]) -> None:
        self._parsed = {name: load({name: text}) for name, text in files.items()}
        self._registry = list(registry)
        self._last: MeshSnapshot | None = None
        self._listed: list[Loaded] | None = None
        self.version = 0

    def update(self, name: str, text: str) -> MeshSnapshot:
        return self.update_many({name: text})

    def update_many(self, files: dict[str, str]) -> MeshSnapshot:
        """One snapshot after several files changed at once."""
        before = self._resources()
        for name, text in files.items():
            self._parsed[name] = load({name: text})
        self._listed = None
        if self._last is not None:
            found = with_config(self._last, before, self._resources(), self.version + 1)
            if found is not None:
                self.version += 1
                self._last = found
                return found
        return self.snapshot()

    def set_registry(self, registry: Iterable[WorkloadInstance]) -> MeshSnapshot:
        """The snapshot with a new workload registry (an endpoint-only change)."""
        before, self._registry = self._registry, list(registry)
        if self._last is None:
            return self.snapshot()
        self.version += 1
        self._last, _ = with_instances(
            self._last, self._resources(), before, self._registry, self.version
        )
        return self._last

    def snapshot(self) -> MeshSnapshot:
        self.version += 1
        self._last = build_snapshot(self._resources(), self._registry, self.version)
        return self._last

    def _resources(self) -> list[Loaded]:
        """Every file's resources, in file order (made again only after a change)."""
        if self._listed is None:
            self._listed = [r for name in sorted(self._parsed) for r in self._parsed[name]]
        return self._listed
