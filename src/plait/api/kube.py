"""Kubernetes `v1/Service` and `apps/v1/Deployment`: the subset a mesh needs, validated.

Only the fields plait uses are modelled (DESIGN.md, "Local mode"); every other field of a
real manifest is kept as an extra and ignored, so manifests written for a cluster load
unchanged. `KNOWN` lists the Kubernetes fields that are not modelled, so that a key that
is neither (a typo such as `serviceAcountName`) can be reported.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    Field,
    PlainValidator,
    Strict,
    WithJsonSchema,
    model_validator,
)

from plait.api.common import (
    KubeModel,
    Labels,
    NonEmptyStr,
    NonNegInt,
    ObjectMeta,
    PortNumber,
    Str,
    StrMap,
    dns_label,
    first_repeated,
    is_ip,
    known,
)

KubeProtocol = Literal["TCP", "UDP", "SCTP"]
_SVC_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
_DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def _int_or_name(value: Any) -> int | str:
    if isinstance(value, int) and not isinstance(value, bool):
        if not 1 <= value <= 65535:
            raise ValueError(f"port {value} is out of range; use 1 to 65535")
        return value
    if not isinstance(value, str):
        raise ValueError("expected a port number or a port name")
    if value.isdigit():
        raise ValueError(
            f"'{value}' is a quoted number; write {value} without quotes, or use a port name"
        )
    if len(value) > 15 or not _SVC_NAME.match(value) or "--" in value:
        raise ValueError(
            f"'{value}' is not a valid port name: at most 15 lowercase letters, digits and '-'"
        )
    return value


IntOrName = Annotated[
    int | str,
    PlainValidator(_int_or_name),
    WithJsonSchema({"anyOf": [{"type": "integer"}, {"type": "string"}]}),
]
"""Kubernetes IntOrString for ports: a number (1-65535) or a container port's name."""


def _dns_1035(value: str) -> str:
    if len(value) > 63 or not _DNS_1035.match(value):
        raise ValueError(
            f"'{value}' is not a valid Service name: lowercase letters, digits and '-', "
            "starting with a letter (at most 63 characters)"
        )
    return value


class ServiceMeta(ObjectMeta):
    name: Annotated[str, Strict(), AfterValidator(_dns_1035)]


class KubeServicePort(KubeModel):
    name: Annotated[str, Strict(), AfterValidator(dns_label)] | None = None
    port: PortNumber
    target_port: IntOrName | None = None
    protocol: KubeProtocol = "TCP"
    app_protocol: Str | None = None
    node_port: PortNumber | None = None

    @property
    def effective_target_port(self) -> int | str:
        """`targetPort`, or `port` when it is not set (the Kubernetes default)."""
        return self.target_port if self.target_port is not None else self.port


class KubeServiceSpec(KubeModel):
    KNOWN: ClassVar[frozenset[str]] = known(
        """allocateLoadBalancerNodePorts clusterIPs externalIPs externalTrafficPolicy
        healthCheckNodePort internalTrafficPolicy ipFamilies ipFamilyPolicy loadBalancerClass
        loadBalancerIP loadBalancerSourceRanges publishNotReadyAddresses sessionAffinityConfig
        trafficDistribution"""
    )

    selector: StrMap = Field(default_factory=dict)
    ports: tuple[KubeServicePort, ...] = ()
    type: Literal["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"] = "ClusterIP"
    cluster_ip: Str | None = Field(default=None, alias="clusterIP")
    external_name: Str | None = None
    session_affinity: Literal["None", "ClientIP"] = "None"

    @model_validator(mode="after")
    def _port_names(self) -> KubeServiceSpec:
        if len(self.ports) > 1 and any(p.name is None for p in self.ports):
            raise ValueError("a Service with more than one port must name every port")
        names = [p.name for p in self.ports if p.name is not None]
        repeated = first_repeated(names)
        if repeated is not None:
            raise ValueError(f"port name '{repeated}' is used more than once")
        return self


class KubeService(KubeModel):
    """`apiVersion: v1`, `kind: Service`: a name for a set of pods (by `selector`) and ports."""

    api_version: Literal["v1"]
    kind: Literal["Service"]
    metadata: ServiceMeta
    spec: KubeServiceSpec = Field(default_factory=KubeServiceSpec)
    status: dict[str, Any] | None = None


class EnvVar(KubeModel):
    name: NonEmptyStr
    value: Str | None = None
    value_from: dict[str, Any] | None = None


class ContainerPort(KubeModel):
    container_port: PortNumber
    name: Str | None = None
    protocol: KubeProtocol = "TCP"
    host_port: PortNumber | None = None
    host_ip: Str | None = Field(default=None, alias="hostIP")


class Container(KubeModel):
    KNOWN: ClassVar[frozenset[str]] = known(
        """envFrom imagePullPolicy lifecycle livenessProbe readinessProbe resizePolicy
        restartPolicy securityContext startupProbe stdin stdinOnce terminationMessagePath
        terminationMessagePolicy tty volumeDevices volumeMounts"""
    )

    name: Annotated[str, Strict(), AfterValidator(dns_label)]
    image: Str | None = None
    command: tuple[Str, ...] = ()
    args: tuple[Str, ...] = ()
    env: tuple[EnvVar, ...] = ()
    ports: tuple[ContainerPort, ...] = ()
    working_dir: Str | None = None
    resources: dict[str, Any] = Field(default_factory=dict)


def _nameserver(value: str) -> str:
    if not is_ip(value):
        raise ValueError(f"nameserver '{value}' is not an IP address")
    return value


class PodDNSConfigOption(KubeModel):
    name: NonEmptyStr
    value: Str | None = None


class PodDNSConfig(KubeModel):
    """`spec.dnsConfig`: added to the pod's resolv.conf (limits as the API server's)."""

    nameservers: Annotated[
        tuple[Annotated[str, Strict(), AfterValidator(_nameserver)], ...], Field(max_length=3)
    ] = ()
    searches: Annotated[tuple[NonEmptyStr, ...], Field(max_length=32)] = ()
    options: tuple[PodDNSConfigOption, ...] = ()


DNSPolicy = Literal["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"]


class PodSpec(KubeModel):
    KNOWN: ClassVar[frozenset[str]] = known(
        """activeDeadlineSeconds affinity automountServiceAccountToken
        enableServiceLinks ephemeralContainers hostAliases hostIPC hostNetwork hostPID
        hostUsers hostname hostnameOverride imagePullSecrets initContainers nodeName
        nodeSelector os overhead preemptionPolicy priority priorityClassName readinessGates
        resourceClaims resources restartPolicy runtimeClassName schedulerName
        schedulingGates securityContext serviceAccount setHostnameAsFQDN
        shareProcessNamespace subdomain terminationGracePeriodSeconds tolerations
        topologySpreadConstraints volumes"""
    )

    containers: Annotated[tuple[Container, ...], Field(min_length=1)]
    service_account_name: NonEmptyStr = "default"
    dns_policy: DNSPolicy = "ClusterFirst"
    dns_config: PodDNSConfig | None = None

    @model_validator(mode="before")
    @classmethod
    def _deprecated_service_account(cls, data: Any) -> Any:
        legacy = data.get("serviceAccount") if isinstance(data, dict) else None
        if isinstance(legacy, str) and "serviceAccountName" not in data:
            return {**data, "serviceAccountName": legacy}
        return data

    @model_validator(mode="after")
    def _dns(self) -> PodSpec:
        if self.dns_policy == "None" and not (self.dns_config and self.dns_config.nameservers):
            raise ValueError("dnsPolicy 'None' needs at least one dnsConfig.nameservers entry")
        return self

    @model_validator(mode="after")
    def _unique_containers(self) -> PodSpec:
        names = [c.name for c in self.containers]
        repeated = first_repeated(names)
        if repeated is not None:
            raise ValueError(f"container name '{repeated}' is used more than once")
        return self


class PodTemplateMeta(KubeModel):
    KNOWN: ClassVar[frozenset[str]] = known(
        "creationTimestamp finalizers generateName name namespace ownerReferences"
    )

    labels: Labels = Field(default_factory=dict)
    annotations: StrMap = Field(default_factory=dict)


class PodTemplateSpec(KubeModel):
    metadata: PodTemplateMeta = Field(default_factory=PodTemplateMeta)
    spec: PodSpec


class LabelSelector(KubeModel):
    match_labels: Labels = Field(default_factory=dict)
    match_expressions: tuple[dict[str, Any], ...] = ()


class DeploymentSpec(KubeModel):
    KNOWN: ClassVar[frozenset[str]] = known(
        "minReadySeconds paused progressDeadlineSeconds revisionHistoryLimit strategy"
    )

    replicas: NonNegInt = 1
    selector: LabelSelector
    template: PodTemplateSpec

    @model_validator(mode="after")
    def _selector_matches(self) -> DeploymentSpec:
        wanted = self.selector.match_labels
        if not wanted and not self.selector.match_expressions:
            raise ValueError("'selector' is empty; set 'selector.matchLabels' to the pod labels")
        labels = self.template.metadata.labels
        if any(labels.get(k) != v for k, v in wanted.items()):
            raise ValueError(
                "'selector.matchLabels' does not match 'template.metadata.labels'; "
                "every selector label must be on the pod template"
            )
        return self


class KubeDeployment(KubeModel):
    """`apiVersion: apps/v1`, `kind: Deployment`: replicas of a pod template.

    Locally each replica runs the first container's `command` + `args` with its `env`.
    """

    api_version: Literal["apps/v1"]
    kind: Literal["Deployment"]
    metadata: ObjectMeta
    spec: DeploymentSpec
    status: dict[str, Any] | None = None
