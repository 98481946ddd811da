"""Which fields the translator applies today, and warnings for the others.

plait accepts the whole Istio API, but the translator implements it field by field. A
field that validates but is not applied yet gets a warning, so nobody believes a retry
budget or a fault is in force when it is not.

`APPLIED` is the one table to edit when the translator learns a field. Paths use the YAML
names; `[]` stands for any list index; a path covers everything below it (`spec.ports[]`
is every field of every port; a trailing `.*` says the same thing explicitly). Maps are
leaves: `spec.http[].match[].headers` covers every header match.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from pydantic import BaseModel

from plait.api.caveats import set_fields, value_warnings
from plait.api.common import KubeModel
from plait.api.result import Loaded
from plait.errors import ConfigMessage

ALWAYS = ("apiVersion", "kind", "metadata.*", "status")
"""Applied for every kind (`status` is written by controllers and ignored by design)."""

_DR_POLICY_FIELDS = (
    *("loadBalancer." + f for f in ("simple", "consistentHash", "warmupDurationSecs", "warmup")),
    "connectionPool.tcp",
    "connectionPool.http",
    *(
        "outlierDetection." + f
        for f in (
            "consecutive5xxErrors",
            "consecutiveGatewayErrors",
            "consecutiveLocalOriginFailures",
            "splitExternalLocalOriginErrors",
            "interval",
            "baseEjectionTime",
            "maxEjectionPercent",
            "minHealthPercent",
        )
    ),
    *(
        "tls." + f
        for f in (
            "mode",
            "sni",
            "caCertificates",
            "subjectAltNames",
            "insecureSkipVerify",
            "caCrl",
            "clientCertificate",
            "privateKey",
        )
    ),
)
_DR_CLUSTER_PATHS = tuple(
    path
    for policy in ("spec.trafficPolicy", "spec.subsets[].trafficPolicy")
    for path in (
        *(f"{policy}.{f}" for f in _DR_POLICY_FIELDS),
        f"{policy}.retryBudget.percent",
        f"{policy}.retryBudget.minRetryConcurrency",
        f"{policy}.timeout.connectTimeout",
        f"{policy}.portLevelSettings[].port",
        *(f"{policy}.portLevelSettings[].{f}" for f in _DR_POLICY_FIELDS),
    )
)
"""DestinationRule policy fields applied to outbound clusters (translate/clusters.py)."""

APPLIED: Mapping[str, tuple[str, ...]] = {
    "VirtualService": (
        *ALWAYS,
        "spec.hosts",
        "spec.gateways",
        "spec.exportTo",  # model/scope.py
        # translate/tcproutes.py: captured sidecars (transparent mode, Kubernetes); the
        # address-range matches need a chain per range and are not applied yet
        "spec.tcp[].match[].port",
        "spec.tcp[].match[].sourceLabels",
        "spec.tcp[].match[].sourceNamespace",
        "spec.tcp[].match[].gateways",
        "spec.tcp[].route[]",
        "spec.tls[].match[].sniHosts",
        "spec.tls[].match[].port",
        "spec.tls[].match[].sourceLabels",
        "spec.tls[].match[].sourceNamespace",
        "spec.tls[].match[].gateways",
        "spec.tls[].route[]",
        # translate/routes.py and the modules it names; Istio does not apply
        # fault.delay.exponentialDelay nor fault.abort.http2Error either
        "spec.http[].name",
        "spec.http[].match[]",
        "spec.http[].route[].destination",
        "spec.http[].route[].weight",
        "spec.http[].route[].headers",
        "spec.http[].redirect",
        "spec.http[].directResponse",
        "spec.http[].delegate",
        "spec.http[].rewrite",
        "spec.http[].timeout",
        "spec.http[].retries.attempts",
        "spec.http[].retries.perTryTimeout",
        "spec.http[].retries.retryOn",
        "spec.http[].retries.retryRemoteLocalities",
        "spec.http[].retries.retryIgnorePreviousHosts",
        "spec.http[].retries.backoff",
        "spec.http[].fault.delay.fixedDelay",
        "spec.http[].fault.delay.percent",
        "spec.http[].fault.delay.percentage",
        "spec.http[].fault.abort.httpStatus",
        "spec.http[].fault.abort.grpcStatus",
        "spec.http[].fault.abort.percentage",
        "spec.http[].mirror",
        "spec.http[].mirrors[]",
        "spec.http[].mirrorPercent",
        "spec.http[].mirrorPercentage",
        "spec.http[].corsPolicy",
        "spec.http[].headers",
    ),
    "DestinationRule": (
        *ALWAYS,
        "spec.host",
        "spec.exportTo",  # model/scope.py
        "spec.subsets[].name",
        "spec.subsets[].labels",
        *_DR_CLUSTER_PATHS,
    ),
    "Gateway": (
        *ALWAYS,
        "spec.selector",
        "spec.servers[].port.number",
        "spec.servers[].port.protocol",
        "spec.servers[].port.name",
        "spec.servers[].hosts",
        "spec.servers[].tls.httpsRedirect",
        "spec.servers[].tls.mode",
        "spec.servers[].tls.serverCertificate",
        "spec.servers[].tls.privateKey",
        "spec.servers[].tls.caCertificates",
        "spec.servers[].tls.minProtocolVersion",
        "spec.servers[].tls.maxProtocolVersion",
        "spec.servers[].tls.cipherSuites",
    ),
    "ServiceEntry": (
        *ALWAYS,
        "spec.hosts",
        "spec.ports[]",
        "spec.location",
        "spec.resolution",
        "spec.endpoints[].address",
        "spec.endpoints[].ports",
        "spec.endpoints[].labels",
        "spec.endpoints[].weight",
        "spec.workloadSelector",
        "spec.exportTo",  # model/scope.py
    ),
    # model/scope.py: which services and routes a proxy gets. Ingress listeners, bind
    # addresses and capture modes would reshape listeners plait builds from the workload's
    # Services; they are reported, not applied.
    "Sidecar": (
        *ALWAYS,
        "spec.workloadSelector",
        "spec.egress[].port",
        "spec.egress[].hosts",
        "spec.outboundTrafficPolicy.mode",
    ),
    # Only the mesh ConfigMap (istio-system/istio) keeps its data; see api.meshconfig.
    "ConfigMap": (
        "apiVersion",
        "kind",
        "metadata.*",
        "data.mesh.outboundTrafficPolicy.mode",
        "data.mesh.trustDomain",
        # tracing: model/meshsettings.py, translate/tracing.py
        "data.mesh.enableTracing",
        "data.mesh.defaultConfig.tracing.sampling",
        "data.mesh.defaultConfig.tracing.zipkin.address",
        "data.mesh.extensionProviders[].name",
        "data.mesh.extensionProviders[].zipkin.service",
        "data.mesh.extensionProviders[].zipkin.port",
        "data.mesh.extensionProviders[].opentelemetry.service",
        "data.mesh.extensionProviders[].opentelemetry.port",
        "data.mesh.defaultProviders.tracing",
    ),
    # security.istio.io: model/security.py, translate/{mtls,rbac,jwt}.py. CUSTOM actions
    # need an external authorizer (MeshConfig extensionProviders), which plait lacks.
    "PeerAuthentication": (*ALWAYS, "spec.*"),
    "AuthorizationPolicy": (
        *ALWAYS,
        "spec.selector",
        "spec.targetRef",
        "spec.targetRefs",
        "spec.rules",
        "spec.action",
    ),
    "RequestAuthentication": (*ALWAYS, "spec.*"),
    # telemetry.istio.io: model/telemetry.py (precedence), translate/telemetryapi.py.
    "Telemetry": (
        *ALWAYS,
        "spec.selector",
        "spec.targetRef",
        "spec.targetRefs",
        "spec.tracing[].match",
        "spec.tracing[].providers",
        "spec.tracing[].randomSamplingPercentage",
        "spec.tracing[].disableSpanReporting",
        "spec.tracing[].customTags",
        "spec.accessLogging[].match",
        "spec.accessLogging[].providers",
        "spec.accessLogging[].disabled",
        "spec.accessLogging[].filter",
        "spec.metrics[].overrides[].match",
        "spec.metrics[].overrides[].disabled",
    ),
    # plait's own RateLimit: every field is applied (translate/ratelimit.py).
    "RateLimit": (*ALWAYS, "spec.*"),
    # Kubernetes kinds: plait models only what it uses, so all of the model is applied.
    # (`image` is deliberately ignored in local mode; see DESIGN.md.)
    "Service": (*ALWAYS, "spec.*"),
    "Deployment": (*ALWAYS, "spec.*"),
}

NOT_APPLIED = "understood but not applied yet by plait; it has no effect"

EXTENSIONS: Mapping[str, Mapping[str, str]] = {
    "DestinationRule": {
        "trafficPolicy.retryPolicy": (
            "'retryPolicy' is not an Istio DestinationRule field; plait applies it as an "
            "extension to routes to this host that set no retries. Istio rejects it: use "
            "VirtualService 'spec.http[].retries' instead"
        ),
        "trafficPolicy.timeout": (
            "'timeout' is not an Istio DestinationRule field; plait applies 'http' to routes "
            "to this host that set no timeout, and 'connectTimeout' to the connections. "
            "Istio rejects it: use VirtualService 'spec.http[].timeout' and "
            "'trafficPolicy.connectionPool.tcp.connectTimeout' instead"
        ),
    },
}
"""plait extensions: fields Istio does not have, applied by plait with a warning naming
the standard field. Keys are suffixes of a field path (any depth: top level, subset, port)."""


def unapplied_warnings(loaded: Loaded) -> list[ConfigMessage]:
    """One warning per field the user set that the translator does not apply, and one per
    plait extension used (`EXTENSIONS`).

    Only the highest such field is reported (`spec.http[0].fault`, not every leaf of it).
    """
    table = _normalize(APPLIED.get(loaded.resource.kind, ()))
    head = value_warnings(loaded) + _extension_warnings(loaded)  # api/caveats.py, EXTENSIONS
    return head + [
        loaded.message(path, f"'{path.rsplit('.', 1)[-1]}' is {NOT_APPLIED}")
        for path in unapplied_paths(loaded.resource, table)
    ]


def unapplied_paths(model: BaseModel, applied: frozenset[str]) -> list[str]:
    """Concrete paths (`spec.http[0].fault`) of set fields not covered by `applied`."""
    return list(_walk(model, "", "", applied))


def _normalize(paths: tuple[str, ...]) -> frozenset[str]:
    return frozenset(p.removesuffix(".*") for p in paths)


def _covered(pattern: str, applied: frozenset[str]) -> bool:
    return any(pattern == a or pattern.startswith((a + ".", a + "[")) for a in applied)


def _leads_to(pattern: str, applied: frozenset[str]) -> bool:
    return any(a.startswith((pattern + ".", pattern + "[")) for a in applied)


def _walk(model: BaseModel, pattern: str, path: str, applied: frozenset[str]) -> Iterator[str]:
    fields = type(model).model_fields
    for name, field in fields.items():
        if name not in model.model_fields_set:
            continue
        value = getattr(model, name)
        if value is None or (isinstance(value, tuple | dict) and not value):
            continue
        key = field.alias or name
        sub_pattern = f"{pattern}.{key}" if pattern else key
        sub_path = f"{path}.{key}" if path else key
        if _covered(sub_pattern, applied):
            continue
        if not _leads_to(sub_pattern, applied):
            yield sub_path
        elif isinstance(value, BaseModel):
            yield from _walk(value, sub_pattern, sub_path, applied)
        elif isinstance(value, tuple):
            for i, item in enumerate(value):
                if isinstance(item, BaseModel):
                    yield from _walk(item, sub_pattern + "[]", f"{sub_path}[{i}]", applied)
    if not isinstance(model, KubeModel):  # an open Istio message (MeshConfig): extras are
        for key in model.model_extra or {}:  # its fields that plait does not model
            yield f"{path}.{key}" if path else key


def _extension_warnings(loaded: Loaded) -> list[ConfigMessage]:
    table = EXTENSIONS.get(loaded.resource.kind, {})
    return [
        loaded.message(path, message)
        for path, _ in set_fields(loaded.resource)
        for suffix, message in table.items()
        if path.endswith("." + suffix)
    ]
