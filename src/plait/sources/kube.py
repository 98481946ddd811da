"""The Kubernetes API as a source: the same typed inputs as the mesh directory and the
workload registry, so the pipeline cannot tell which one it reads.

One reflector per kind (`plait.kube.reflector`): Services, the Istio and plait CRDs and
the mesh ConfigMap (`istio-system/istio`) become `ConfigChanged`; Pods and
EndpointSlices become `WorkloadsChanged` (`plait.kube.objects`). The reflectors' handlers
only record which kinds changed and wake this source's loop, which rebuilds the affected
event; the pipeline then keeps the newest event per key and debounces, so a burst of
object events becomes one snapshot.

Each object is validated as a file's document is (the api loader, then `check`, e.g.
`analysis.vet`), cached by resourceVersion. An object with errors keeps its last good
version in force (the directory source's rule, per object instead of per file): an
edit that breaks a VirtualService is reported and never pushed. A reflector that cannot
reach the API server reports a `SourceError` while the last good state stays.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx2 as httpx

from plait.api import Loaded, LoadResult
from plait.api.kinds import KINDS
from plait.api.loader import load_object
from plait.api.meshconfig import MESH_CONFIG_NAME, ROOT_NAMESPACE
from plait.errors import ConfigMessage, Severity
from plait.kube.crds import NAMES
from plait.kube.objects import config_document, source_name, workload_instances
from plait.kube.reflector import ApiKind, Delta, Reflector, version_of
from plait.kube.status import StatusWriter, Target
from plait.sources.directory import ConfigView
from plait.sources.events import ConfigChanged, Emit, SourceError, WorkloadsChanged

NAME = "kubernetes"

SERVICES = ApiKind("Service", "", "v1", "services")
CONFIGMAPS = ApiKind("ConfigMap", "", "v1", "configmaps")
PODS = ApiKind("Pod", "", "v1", "pods")
ENDPOINTSLICES = ApiKind("EndpointSlice", "discovery.k8s.io", "v1", "endpointslices")


def crd_kinds() -> list[ApiKind]:
    """Every CRD plait reads, at its storage version."""
    return [
        ApiKind(kind, KINDS[kind].groups[0], names.storage, names.plural)
        for kind, names in NAMES.items()
    ]


ObjKey = tuple[str, str, str]  # (kind, namespace, name)


class ObjectConfig:
    """Objects → a ConfigView, with last-good per object; owned by one task."""

    def __init__(self, check: Callable[[LoadResult], LoadResult] | None) -> None:
        self._check = check
        self._parsed: dict[ObjKey, tuple[str, LoadResult]] = {}
        self._last_good: dict[ObjKey, tuple[Loaded, ...]] = {}

    def _load(self, key: ObjKey, obj: dict[str, object]) -> LoadResult:
        version = version_of(obj)
        cached = self._parsed.get(key)
        if cached is not None and cached[0] == version:
            return cached[1]
        result = load_object(config_document(obj), source_name(obj))
        if self._check is not None:
            result = self._check(result)
        self._parsed[key] = (version, result)
        return result

    def view(self, objects: dict[ObjKey, dict[str, object]]) -> ConfigView:
        resources: list[Loaded] = []
        messages: list[ConfigMessage] = []
        kept: list[str] = []
        for key in sorted(objects):
            result = self._load(key, objects[key])
            messages.extend(result.messages)
            if any(m.severity is Severity.ERROR for m in result.messages):
                good = self._last_good.get(key, ())
                if good and not result.resources:
                    kept.append(f"{key[0]}/{key[1]}/{key[2]} ({source_name(objects[key])})")
                resources.extend(result.resources or good)
                continue
            self._last_good[key] = result.resources
            resources.extend(result.resources)
        for gone in set(self._parsed) - set(objects):
            del self._parsed[gone]
            self._last_good.pop(gone, None)
        return ConfigView(tuple(resources), tuple(messages), tuple(kept))


class KubernetesSource:
    """Services, CRDs, the mesh ConfigMap, Pods and EndpointSlices of one cluster."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        check: Callable[[LoadResult], LoadResult] | None = None,
        watch_timeout: tuple[int, int] = (300, 600),
        status: StatusWriter | None = None,
    ) -> None:
        self.http = http
        self.status = status
        self.config = ObjectConfig(check)
        self._changed: set[str] = set()
        self._wake = asyncio.Event()
        self._errors: dict[str, str] = {}
        self._emit: Emit = lambda _: None

        def reflector(
            kind: ApiKind, namespace: str | None = None, field_selector: str | None = None
        ) -> Reflector:
            return Reflector(
                http,
                kind,
                self._on_change(kind.kind),
                on_error=self._on_error(kind.kind),
                watch_timeout=watch_timeout,
                namespace=namespace,
                field_selector=field_selector,
            )

        self.crd_reflectors = [reflector(k) for k in crd_kinds()]
        self.config_reflectors = [reflector(SERVICES), *self.crd_reflectors]
        self.config_reflectors.append(
            reflector(
                CONFIGMAPS,
                namespace=ROOT_NAMESPACE,
                field_selector=f"metadata.name={MESH_CONFIG_NAME}",
            )
        )
        self.pods = reflector(PODS)
        self.slices = reflector(ENDPOINTSLICES)
        self._config_kinds = {r.kind.kind for r in self.config_reflectors}

    @property
    def name(self) -> str:
        return NAME

    def _on_change(self, kind: str) -> Callable[[list[Delta]], None]:
        def changed(_: list[Delta]) -> None:
            self._changed.add(kind)
            self._wake.set()

        return changed

    def _on_error(self, kind: str) -> Callable[[str | None], None]:
        def report(message: str | None) -> None:
            before = dict(self._errors)
            if message is None:
                self._errors.pop(kind, None)
            else:
                self._errors[kind] = message
            if before != self._errors:
                text = "; ".join(self._errors[k] for k in sorted(self._errors))
                self._emit(SourceError(NAME, text or None))

        return report

    def config_objects(self) -> dict[ObjKey, dict[str, object]]:
        """A copy of what the reflectors hold (taken on the loop; objects are replaced,
        never changed in place, so the copy can be parsed in a worker thread)."""
        return {
            (r.kind.kind, key[0], key[1]): obj
            for r in self.config_reflectors
            for key, obj in r.items.items()
        }

    async def config_view(self) -> ConfigView:
        view = await asyncio.to_thread(self.config.view, self.config_objects())
        if self.status is not None:
            self.status.update(self._status_targets(view))
        return view

    def _status_targets(
        self, view: ConfigView
    ) -> dict[Target, tuple[dict[str, object], list[str]]]:
        """Each mesh resource (CRD object) with the errors of its latest version."""
        errors: dict[str, list[str]] = {}
        for m in view.messages:
            if m.severity is Severity.ERROR:
                errors.setdefault(m.file, []).append(
                    f"{m.path}: {m.message}" if m.path else m.message
                )
        return {
            (r.kind, key[0], key[1]): (obj, errors.get(source_name(obj), []))
            for r in self.crd_reflectors
            for key, obj in r.items.items()
        }

    def instances(self) -> WorkloadsChanged:
        return WorkloadsChanged(
            NAME, workload_instances(self.pods.items, self.slices.items.values())
        )

    async def run(self, emit: Emit, ready: asyncio.Event) -> None:
        self._emit = emit
        reflectors = [*self.config_reflectors, self.pods, self.slices]
        async with asyncio.TaskGroup() as tg:
            if self.status is not None:
                tg.create_task(self.status.run(), name="status writer")
            for r in reflectors:
                tg.create_task(r.run(), name=f"reflect {r.kind.kind}")
            await asyncio.gather(*(r.synced.wait() for r in reflectors))
            self._changed.clear()
            self._wake.clear()
            last_view = await self.config_view()
            emit(ConfigChanged(NAME, last_view))
            last_instances = self.instances()
            emit(last_instances)
            ready.set()
            while True:
                await self._wake.wait()
                self._wake.clear()
                changed, self._changed = self._changed, set()
                if changed & self._config_kinds:
                    view = await self.config_view()
                    if view != last_view:
                        emit(ConfigChanged(NAME, view))
                        last_view = view
                if changed & {PODS.kind, ENDPOINTSLICES.kind}:
                    instances = self.instances()
                    if instances != last_instances:
                        emit(instances)
                        last_instances = instances
