"""`inject(pod, settings) -> pod`: the one injector, shared by the admission webhook and
`plait kube-inject` (Istio's pkg/kube/inject has the same shape). Pure: a dict in (the
Pod as the API server or a manifest has it), a new dict out; the input is never changed.

What an injected pod gets (the names are Istio's, so its tooling reads plait pods):

- `istio-init`, the capture init container: `plait capture apply` with the pod's capture
  annotations (`capture.command.apply_argv`), as root with NET_ADMIN/NET_RAW only;
- `istio-proxy`, the agent + Envoy as a *native sidecar* (an init container with
  `restartPolicy: Always`, Kubernetes >= 1.29) placed right after `istio-init`, so the
  pod's own init containers and apps already have the mesh. With
  `hold_application_until_proxy_starts` it has a startup probe on /healthz/ready: the
  kubelet starts the next container only once the probe passes;
- the projected service-account token (audience `plait-ca`) the agent shows the CA, and
  the mesh's trust bundle (ConfigMap `istio-ca-root-cert`) to trust the CA with;
- Prometheus scrape annotations for Envoy's metrics port, the labels Istio adds
  (`security.istio.io/tlsMode`, canonical name and revision) and the status annotation
  `sidecar.istio.io/status`, which is what makes a second injection a no-op.

A pod annotated (or labelled) `sidecar.istio.io/inject: "false"`, a hostNetwork pod
(nothing to capture) and an injected pod come back unchanged. A malformed sidecar
annotation raises InjectionError naming it, so a webhook can refuse the pod with that
message instead of admitting a pod that cannot start.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from typing import Any, Final

from plait.capture.command import apply_argv
from plait.errors import CaptureSettingsError, InjectionError
from plait.inject.settings import (
    HEALTH_PATH,
    HEALTH_PORT,
    INIT_NAME,
    LABELS_ENV,
    MERGED_METRICS_PORT,
    METRICS_PATH,
    METRICS_PORT,
    PORTS_ENV,
    PROXY_NAME,
    ROOT_CERT_DIR,
    ROOT_CERT_PATH,
    ROOT_CERT_VOLUME,
    TOKEN_DIR,
    TOKEN_FILE,
    TOKEN_PATH,
    TOKEN_VOLUME,
    WORKLOAD_ENV,
    InjectSettings,
    Resources,
)
from plait.kube import objects

INJECT: Final = "sidecar.istio.io/inject"
STATUS: Final = "sidecar.istio.io/status"
PROXY_CPU: Final = "sidecar.istio.io/proxyCPU"
PROXY_MEMORY: Final = "sidecar.istio.io/proxyMemory"
PROXY_CPU_LIMIT: Final = "sidecar.istio.io/proxyCPULimit"
PROXY_MEMORY_LIMIT: Final = "sidecar.istio.io/proxyMemoryLimit"
ENVOY_VOLUME: Final = "plait-envoy"
ENVOY_DIR: Final = "/var/run/plait"

_TRUE = frozenset({"true", "yes", "y", "on"})
_FALSE = frozenset({"false", "no", "n", "off"})
_QUANTITY = re.compile(r"^(\d+(\.\d*)?|\.\d+)(([KMGTPE]i)|[numkMGTPE]|[eE][+-]?\d+)?$")

Pod = dict[str, Any]


def check_shape(pod: object) -> None:
    """InjectionError naming the field if `pod` is not shaped as a Pod where inject reads
    or writes (a hand-written manifest can be anything; the API server's pods pass)."""
    if not isinstance(pod, Mapping):
        raise InjectionError("the pod is not a mapping")
    for parent, members in (("metadata", ("labels", "annotations")),
                            ("spec", ("containers", "initContainers", "volumes"))):  # fmt: skip
        part = pod.get(parent)
        if part is None:
            continue
        if not isinstance(part, Mapping):
            raise InjectionError(f"{parent} must be a mapping")
        for member in members:
            value = part.get(member)
            if value is None:
                continue
            if parent == "metadata":
                if not isinstance(value, Mapping) or not all(
                    isinstance(k, str) and isinstance(v, str) for k, v in value.items()
                ):
                    raise InjectionError(f"metadata.{member} must map strings to strings")
            elif not isinstance(value, list) or not all(isinstance(i, Mapping) for i in value):
                raise InjectionError(f"spec.{member} must be a list of mappings")


def inject_choice(pod: Mapping[str, Any]) -> bool | None:
    """The pod's own say (label first, then annotation, as Istio reads it): True, False,
    or None when it says nothing."""
    meta = pod.get("metadata") or {}
    for where in ("labels", "annotations"):
        value = (meta.get(where) or {}).get(INJECT)
        if value is None:
            continue
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise InjectionError(f'metadata.{where}[{INJECT!r}]={value!r}: expected "true" or "false"')
    return None


def is_injected(pod: Mapping[str, Any]) -> bool:
    """Already carries plait's (or Istio's) sidecar."""
    meta = pod.get("metadata") or {}
    if STATUS in (meta.get("annotations") or {}):
        return True
    spec = pod.get("spec") or {}
    names = {
        c.get("name")
        for c in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
    }
    return PROXY_NAME in names


def inject(pod: Mapping[str, Any], settings: InjectSettings) -> Pod:
    """`pod` with the mesh added (see the module docstring); an unchanged copy when the
    pod opts out, runs on the host network, or is injected already. InjectionError for a
    malformed annotation or a pod not shaped as one (`check_shape`)."""
    check_shape(pod)
    out: Pod = copy.deepcopy(dict(pod))
    if (
        inject_choice(pod) is False
        or is_injected(pod)
        or (pod.get("spec") or {}).get("hostNetwork")
    ):
        return out
    meta = out.setdefault("metadata", {})
    annotations: dict[str, str] = dict(meta.get("annotations") or {})
    labels: dict[str, str] = dict(meta.get("labels") or {})
    spec = out.setdefault("spec", {})

    labels.setdefault("security.istio.io/tlsMode", "istio")
    labels.setdefault("service.istio.io/canonical-name", labels.get("app") or _workload_name(meta))
    labels.setdefault("service.istio.io/canonical-revision", labels.get("version") or "latest")
    init = _capture_container(annotations, settings)
    proxy = _proxy_container(annotations, settings)
    proxy["env"] += _workload_env(out, labels)
    spec["initContainers"] = [init, proxy, *(spec.get("initContainers") or [])]
    spec["volumes"] = [*(spec.get("volumes") or []), *_volumes(settings)]

    app = _first_app(spec)
    if app:
        annotations.setdefault("kubectl.kubernetes.io/default-container", app)
    annotations.update(
        {
            "prometheus.io/scrape": "true",
            "prometheus.io/port": str(MERGED_METRICS_PORT),
            "prometheus.io/path": METRICS_PATH,
            STATUS: json.dumps(
                {
                    "initContainers": [INIT_NAME, PROXY_NAME],
                    "containers": [],
                    "volumes": [TOKEN_VOLUME, ROOT_CERT_VOLUME, ENVOY_VOLUME],
                    "revision": settings.revision,
                },
                separators=(",", ":"),
            ),
        }
    )
    meta["annotations"], meta["labels"] = annotations, labels
    return out


def _first_app(spec: Mapping[str, Any]) -> str:
    containers = spec.get("containers") or []
    return str(containers[0].get("name", "")) if containers else ""


def _workload_name(meta: Mapping[str, Any]) -> str:
    """The pod's name without the ReplicaSet's and pod's generated suffixes."""
    name = str(meta.get("name") or meta.get("generateName") or "unknown").rstrip("-")
    for owner in meta.get("ownerReferences") or []:
        if owner.get("kind") == "ReplicaSet":
            return str(owner.get("name", name)).rsplit("-", 1)[0]
    return name


def _workload_env(pod: Mapping[str, Any], labels: Mapping[str, str]) -> list[dict[str, str]]:
    """What the proxy tells the control plane about its pod (node metadata), with
    Istio's variable names: the workload (the Deployment, not the ReplicaSet), the pod's
    labels as injected (JSON) and its app containers' ports (JSON: the agent's inbound
    app port is the first TCP one)."""
    spec = pod.get("spec") or {}
    ports = [
        {k: p[k] for k in ("name", "containerPort", "protocol") if k in p}
        for c in spec.get("containers") or []
        for p in c.get("ports") or []
    ]
    workload = objects.workload_name(dict(pod)) or _workload_name(pod.get("metadata") or {})
    return [
        {"name": WORKLOAD_ENV, "value": workload},
        {"name": LABELS_ENV, "value": json.dumps(dict(labels), sort_keys=True)},
        {"name": PORTS_ENV, "value": json.dumps(ports, separators=(",", ":"))},
    ]


def _capture_container(annotations: Mapping[str, str], s: InjectSettings) -> dict[str, Any]:
    try:
        argv = apply_argv(annotations, proxy_uid=s.proxy_uid, program=())
    except CaptureSettingsError as exc:
        raise InjectionError(f"metadata.annotations: {exc}") from None
    return {
        "name": INIT_NAME,
        "image": s.proxy_image,
        "imagePullPolicy": s.image_pull_policy,
        "args": argv,
        "resources": _resources(annotations, s.resources),
        "securityContext": {
            "runAsUser": 0,
            "runAsGroup": 0,
            "runAsNonRoot": False,
            "privileged": False,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": False,
            "capabilities": {"add": ["NET_ADMIN", "NET_RAW"], "drop": ["ALL"]},
        },
    }


def _field_env(name: str, path: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


def _health_probe(period_s: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": HEALTH_PATH, "port": HEALTH_PORT},
        "timeoutSeconds": 3,
        "periodSeconds": period_s,
        "failureThreshold": failures,
    }


def _proxy_container(annotations: Mapping[str, str], s: InjectSettings) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": PROXY_NAME,
        "image": s.proxy_image,
        "imagePullPolicy": s.image_pull_policy,
        "restartPolicy": "Always",
        "args": [
            "proxy",
            "sidecar",
            f"--xds-address={s.xds_address}",
            f"--ca-address={s.ca_address}",
            f"--trust-domain={s.trust_domain}",
            f"--token-file={TOKEN_PATH}",
            f"--ca-root-file={ROOT_CERT_PATH}",
        ],
        "env": [
            _field_env("POD_NAME", "metadata.name"),
            _field_env("POD_NAMESPACE", "metadata.namespace"),
            _field_env("INSTANCE_IP", "status.podIP"),
            _field_env("SERVICE_ACCOUNT", "spec.serviceAccountName"),
        ],
        "ports": [
            {"name": "http-merged", "containerPort": MERGED_METRICS_PORT, "protocol": "TCP"},
            {"name": "http-envoy-prom", "containerPort": METRICS_PORT, "protocol": "TCP"},
            {"name": "status-port", "containerPort": HEALTH_PORT, "protocol": "TCP"},
        ],
        "readinessProbe": _health_probe(period_s=2, failures=4),
        "resources": _resources(annotations, s.resources),
        "securityContext": {
            "runAsUser": s.proxy_uid,
            "runAsGroup": s.proxy_uid,
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "privileged": False,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [
            {"name": TOKEN_VOLUME, "mountPath": TOKEN_DIR, "readOnly": True},
            {"name": ROOT_CERT_VOLUME, "mountPath": ROOT_CERT_DIR, "readOnly": True},
            {"name": ENVOY_VOLUME, "mountPath": ENVOY_DIR},
        ],
    }
    if s.hold_application_until_proxy_starts:
        container["startupProbe"] = _health_probe(period_s=1, failures=600)
    return container


def _volumes(s: InjectSettings) -> list[dict[str, Any]]:
    token = {
        "serviceAccountToken": {
            "audience": s.token_audience,
            "expirationSeconds": s.token_expiration_s,
            "path": TOKEN_FILE,
        }
    }
    return [
        {"name": TOKEN_VOLUME, "projected": {"sources": [token]}},
        {"name": ROOT_CERT_VOLUME, "configMap": {"name": ROOT_CERT_VOLUME}},
        {"name": ENVOY_VOLUME, "emptyDir": {"medium": "Memory"}},
    ]


def _quantity(annotations: Mapping[str, str], name: str, default: str) -> str:
    value = annotations.get(name)
    if value is None:
        return default
    if not _QUANTITY.match(value.strip()):
        raise InjectionError(
            f"metadata.annotations[{name!r}]={value!r}: not a Kubernetes quantity "
            "(e.g. 100m, 0.5, 128Mi)"
        )
    return value.strip()


def _resources(annotations: Mapping[str, str], base: Resources) -> dict[str, dict[str, str]]:
    return Resources(
        cpu_request=_quantity(annotations, PROXY_CPU, base.cpu_request),
        memory_request=_quantity(annotations, PROXY_MEMORY, base.memory_request),
        cpu_limit=_quantity(annotations, PROXY_CPU_LIMIT, base.cpu_limit),
        memory_limit=_quantity(annotations, PROXY_MEMORY_LIMIT, base.memory_limit),
    ).to_kube()
