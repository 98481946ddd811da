"""Every error plait raises or reports, in one place.

    PlaitError                  base of everything plait raises
    ├── ConfigError             a configuration file is unusable (carries ConfigMessages)
    ├── EnvoyError              the Envoy binary is missing or would not start
    ├── WorkloadCertificateError the agent could not get a workload certificate from the CA
    ├── MeshStateError          no running mesh where one was expected (status, down)
    ├── UnknownTargetError      a command names no service, workload or replica of the mesh
    ├── StartupError            `plait up` could not bring the mesh to a ready state
    ├── ProxyLookupError        a proxy name matches no proxy of the running mesh, or several
    ├── EnvoyAdminError         a proxy's Envoy admin interface could not be read
    ├── InconsistentConfigError a translated proxy config names a resource it lacks (a bug)
    ├── RegistryError           the local workload registry cannot be read or parsed
    ├── PodProxyError           the proxy in a pod lacks a setting (an env variable, a flag)
    ├── CaError                 the certificate authority cannot do what was asked
    │   ├── CaFileError         a file in the CA directory is missing, unreadable or mismatched
    │   ├── RotationError       a root-rotation step does not fit the CA directory's state
    │   ├── CsrError            a certificate signing request is malformed or unacceptable
    │   ├── IdentityError       a CSR asks for an identity the caller is not entitled to
    │   └── TokenError          a workload token is malformed, expired or wrongly signed
    └── CaptureError            traffic capture could not be set up or removed
        ├── CaptureSettingsError a capture annotation's value is malformed (names the annotation)
        └── PodNetworkError     a pod network namespace, veth, bridge or hosts file failed

ConfigMessage is not an exception: loading and validation collect them so that one bad
document is reported while every other document keeps working.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Severity(StrEnum):
    """How bad a configuration message is."""

    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class ConfigMessage:
    """One finding about one place in the configuration: file, document index, field path."""

    file: str
    document: int
    path: str
    message: str
    severity: Severity = Severity.ERROR
    kind: str = ""
    name: str = ""

    def __str__(self) -> str:
        where = f"{self.file}[{self.document}]"
        if self.kind:
            where += f" {self.kind}/{self.name}" if self.name else f" {self.kind}"
        field = f" {self.path}:" if self.path else ":"
        return f"{self.severity.value}: {where}{field} {self.message}"

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "document": self.document,
            "path": self.path,
            "message": self.message,
            "severity": self.severity.value,
            "kind": self.kind,
            "name": self.name,
        }


class PlaitError(Exception):
    """Base of every error plait raises."""


class ConfigError(PlaitError):
    """A configuration file could not be used; `messages` says where and why."""

    def __init__(self, messages: list[ConfigMessage]) -> None:
        self.messages = messages
        super().__init__("\n".join(str(m) for m in messages))


class EnvoyError(PlaitError):
    """The Envoy binary is missing, or an Envoy process could not be started."""


class WorkloadCertificateError(PlaitError):
    """The agent could not obtain (or the CA refused) a workload certificate."""


class MeshStateError(PlaitError):
    """There is no running mesh for a directory, or its state file is unreadable."""


class UnknownTargetError(PlaitError):
    """A command (e.g. `plait logs`) names no service, workload or replica of the mesh."""


class StartupError(PlaitError):
    """`plait up` could not bring every process to a ready state."""


class ProxyLookupError(PlaitError):
    """A proxy name given on the command line matches no proxy of the running mesh, or several."""


class EnvoyAdminError(PlaitError):
    """A proxy's Envoy admin interface could not be read (gone, restarting, or not JSON)."""


class InconsistentConfigError(PlaitError):
    """A translated proxy config names an endpoint set or route table it does not hold."""


class RegistryError(PlaitError):
    """The local workload registry (`.plait/workloads.json`) cannot be read or parsed."""


class PodProxyError(PlaitError):
    """The proxy in a pod cannot start: a setting (env variable or flag) is missing or malformed."""


class CaError(PlaitError):
    """The certificate authority cannot do what was asked (base of the CA errors)."""


class CaFileError(CaError):
    """A file in the CA directory is missing, unreadable, or does not match its partner."""


class RotationError(CaError):
    """A root-rotation step does not fit the current state of the CA directory."""


class CsrError(CaError):
    """A certificate signing request is malformed, badly signed, or asks for the wrong things."""


class IdentityError(CaError):
    """A CSR asks for an identity that the caller is not entitled to."""


class TokenError(CaError):
    """A workload token is malformed, expired, or not signed by the expected key."""


class TokenReviewError(CaError):
    """The API server could not be asked to review a token (unreachable, or no RBAC)."""


class CaptureError(PlaitError):
    """Traffic capture (iptables redirection) could not be applied or removed."""


class CaptureSettingsError(CaptureError):
    """A capture setting (a pod annotation) has a malformed value; names the annotation."""

    def __init__(self, annotation: str, value: str, reason: str) -> None:
        self.annotation = annotation
        self.value = value
        self.reason = reason
        super().__init__(f"annotation {annotation}={value!r}: {reason}")


class InjectionError(PlaitError):
    """A pod cannot be injected as asked (a malformed sidecar annotation); names it."""


class ManifestError(PlaitError):
    """A manifest given to `plait kube-inject` is not YAML, or a document is not an object."""


class PodNetworkError(CaptureError):
    """A pod network namespace, veth pair, bridge or per-pod hosts file could not be made."""


class KubeError(PlaitError):
    """Talking to a Kubernetes API server failed (base of the Kubernetes errors)."""


class KubeConfigError(KubeError):
    """No usable kubeconfig: the file, the context or the in-cluster credentials are missing
    or malformed; the message names which."""


class KubeApiError(KubeError):
    """The Kubernetes API server answered a request with an error (its status and message)."""


class ControlPlaneNotFoundError(KubeError):
    """No control plane answers behind its Service in the cluster (no such Service, no
    ready endpoint, or it is not reachable from the API server)."""


class KubeForbiddenError(KubeError):
    """The API server refused a request (401/403, e.g. RBAC): the message names the verb
    and resource."""
