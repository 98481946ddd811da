"""The mesh-wide settings in force: what the mesh ConfigMap says, or Istio's defaults.

Tracing differs from Istio's defaults on purpose: sampling is 100% (Istio: 1%) so that a
first `plait up` shows every request, and with no collector configured the spans go to
the control plane's own trace store, which the control plane fills in
(`with_local_collector`) because only it knows its address. Which collector, in Istio's
order of precedence: the first `defaultProviders.tracing` provider (a `zipkin` or
`opentelemetry` extension provider), else `defaultConfig.tracing.zipkin.address`.
`enableTracing: false` turns tracing off.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from enum import StrEnum

from plait.api import Loaded
from plait.api.meshconfig import ConfigMap, ExtensionProvider, MeshConfig


class OutboundMode(StrEnum):
    """MeshConfig `outboundTrafficPolicy.mode`: may a sidecar reach unregistered hosts?"""

    ALLOW_ANY = "ALLOW_ANY"  # yes, passed through (Istio's default)
    REGISTRY_ONLY = "REGISTRY_ONLY"  # no: only services and ServiceEntry hosts; else 502


DEFAULT_TRUST_DOMAIN = "cluster.local"
ROOT_NAMESPACE = "istio-system"
"""Where mesh-wide policies live (a PeerAuthentication without selector there is mesh-wide)."""


class TraceExport(StrEnum):
    """How spans leave Envoy: Envoy's Zipkin tracer (B3 and W3C) or OpenTelemetry (W3C)."""

    ZIPKIN = "zipkin"  # Zipkin v2 JSON over HTTP, POST /api/v2/spans
    OTLP = "opentelemetry"  # OTLP over gRPC


@dataclass(frozen=True)
class TraceCollector:
    export: TraceExport
    host: str
    port: int
    # the control plane's own store, which also takes Zipkin protobuf: a hint for the
    # encoding, not part of which collector this is (so not compared)
    local: bool = field(default=False, compare=False)


DEFAULT_SAMPLING = 100.0
"""plait's default sampling percentage (Istio's is 1.0): every request is traced locally."""


@dataclass(frozen=True)
class TracingSettings:
    enabled: bool = True
    sampling: float = DEFAULT_SAMPLING  # percent of requests that start a trace
    collector: TraceCollector | None = None  # None: the control plane's own store
    # every zipkin/opentelemetry extension provider by name (a Telemetry may choose one)
    providers: tuple[tuple[str, TraceCollector], ...] = ()

    def provider(self, name: str) -> TraceCollector | None:
        return dict(self.providers).get(name)


@dataclass(frozen=True)
class MeshSettings:
    outbound_mode: OutboundMode = OutboundMode.ALLOW_ANY
    trust_domain: str = DEFAULT_TRUST_DOMAIN
    root_namespace: str = ROOT_NAMESPACE
    tracing: TracingSettings = TracingSettings()
    # extensionProviders that are Envoy file access logs (`envoyFileAccessLog`), by name
    file_log_providers: frozenset[str] = frozenset()


def with_local_collector(settings: MeshSettings, host: str, port: int) -> MeshSettings:
    """`settings` with the control plane's Zipkin-compatible store as the collector, unless
    the mesh config names one."""
    if settings.tracing.collector is not None:
        return settings
    local = TraceCollector(TraceExport.ZIPKIN, host, port, local=True)
    return replace(settings, tracing=replace(settings.tracing, collector=local))


def _split_address(address: str) -> tuple[str, int] | None:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        return None
    return host.strip("[]"), int(port)


def tracing_settings(mesh: MeshConfig) -> TracingSettings:
    """The tracing part of a MeshConfig (see the module docstring)."""
    proxy = mesh.default_config.tracing if mesh.default_config is not None else None
    sampling = proxy.sampling if proxy is not None and proxy.sampling is not None else None
    collector: TraceCollector | None = None
    chosen = mesh.default_providers.tracing if mesh.default_providers is not None else ()
    providers = {
        p.name: c for p in mesh.extension_providers if (c := provider_collector(p)) is not None
    }
    for name in chosen[:1]:
        collector = providers.get(name)
    if collector is None and proxy is not None and proxy.zipkin and proxy.zipkin.address:
        split = _split_address(proxy.zipkin.address)
        if split is not None:
            collector = TraceCollector(TraceExport.ZIPKIN, *split)
    return TracingSettings(
        enabled=mesh.enable_tracing is not False,
        sampling=DEFAULT_SAMPLING if sampling is None else sampling,
        collector=collector,
        providers=tuple(sorted(providers.items())),
    )


def provider_collector(provider: ExtensionProvider) -> TraceCollector | None:
    """The collector of a `zipkin` or `opentelemetry` extension provider, else None."""
    if provider.opentelemetry is not None:
        svc = provider.opentelemetry
        return TraceCollector(TraceExport.OTLP, svc.service, svc.port)
    if provider.zipkin is not None:
        return TraceCollector(TraceExport.ZIPKIN, provider.zipkin.service, provider.zipkin.port)
    return None


def mesh_settings(config: Iterable[Loaded]) -> MeshSettings:
    """The settings of the mesh ConfigMap (`istio-system/istio`) if there is one."""
    for item in config:
        resource = item.resource
        if isinstance(resource, ConfigMap) and resource.is_mesh_config:
            mesh = resource.data.mesh
            if mesh is not None:
                return MeshSettings(
                    outbound_mode=OutboundMode(mesh.outbound_mode),
                    trust_domain=mesh.trust_domain or DEFAULT_TRUST_DOMAIN,
                    tracing=tracing_settings(mesh),
                    file_log_providers=frozenset(
                        p.name
                        for p in mesh.extension_providers
                        if "envoyFileAccessLog" in (p.model_extra or {})
                    ),
                )
    return MeshSettings()
