"""Building blocks shared by every resource model: base configs, scalars, ObjectMeta.

Field conventions (they mirror what Istio's Go code sees):

- attributes are snake_case, YAML keys camelCase (`per_try_timeout` ↔ `perTryTimeout`);
- scalars are strict: `port: "80"` is an error, as it is for the Kubernetes API server;
- an optional scalar or message that is not set is None; a repeated field is a tuple
  (empty when unset); a map is a dict; an enum defaults to Istio's zero value.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Sequence
from typing import Annotated, Any, ClassVar, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    alias_generators,
    model_validator,
)

Str = Annotated[str, Strict()]
Bool = Annotated[bool, Strict()]
NonEmptyStr = Annotated[str, Strict(), Field(min_length=1)]
NonNegInt = Annotated[int, Strict(), Field(ge=0)]
UInt32 = Annotated[int, Strict(), Field(ge=0, le=2**32 - 1)]
PortNumber = Annotated[int, Strict(), Field(ge=1, le=65535)]
StrMap = dict[Str, Str]

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")


class _Model(BaseModel):
    """Frozen, camelCase keys; a known key whose value is null counts as not set."""

    model_config = ConfigDict(
        frozen=True,
        alias_generator=alias_generators.to_camel,
        populate_by_name=True,
    )

    @model_validator(mode="before")
    @classmethod
    def _null_is_unset(cls, data: Any) -> Any:
        # `labels:` with nothing after it is "not set", as for the Kubernetes API server.
        # Only known keys: a misspelt key without a value must still be reported.
        if isinstance(data, dict) and any(v is None for v in data.values()):
            keys = _keys_of(cls)
            return {k: v for k, v in data.items() if v is not None or k not in keys}
        return data


@functools.cache
def _keys_of(model: type[BaseModel]) -> frozenset[str]:
    return frozenset(k for n, f in model.model_fields.items() for k in (n, f.alias or n))


class IstioModel(_Model):
    """An Istio API message: unknown keys are rejected."""

    model_config = ConfigDict(extra="forbid")


class KubeModel(_Model):
    """A Kubernetes object part: like IstioModel, but fields plait does not model are kept.

    `KNOWN` names the real Kubernetes fields at this level that plait does not model; any
    other extra key is probably a typo and is reported as a warning.
    """

    KNOWN: ClassVar[frozenset[str]] = frozenset()

    model_config = ConfigDict(extra="allow")


def known(words: str) -> frozenset[str]:
    """A KNOWN set from space-separated field names."""
    return frozenset(words.split())


def set_among(model: BaseModel, names: tuple[str, ...]) -> list[str]:
    """The YAML names of the fields in `names` that hold a value (not None)."""
    fields = type(model).model_fields
    return [fields[n].alias or n for n in names if getattr(model, n) is not None]


def check_one_of(model: BaseModel, names: tuple[str, ...], *, required: bool) -> None:
    """Enforce a protobuf oneof: at most one of `names` set (exactly one if `required`)."""
    present = set_among(model, names)
    fields = type(model).model_fields
    choices = _quoted_or([fields[n].alias or n for n in names])
    if len(present) > 1:
        raise ValueError(f"set only one of {choices}, not {_quoted_and(present)}")
    if required and not present:
        raise ValueError(f"one of {choices} is required")


T = TypeVar("T")


def first_repeated(values: Sequence[T]) -> T | None:
    """The smallest value that occurs more than once, or None (for "X is used twice")."""
    repeated = sorted({v for v in values if values.count(v) > 1})  # type: ignore[type-var]
    return repeated[0] if repeated else None


def _quoted_or(names: list[str]) -> str:
    quoted = [f"'{n}'" for n in names]
    return ", ".join(quoted[:-1]) + f" or {quoted[-1]}" if len(quoted) > 1 else quoted[0]


def _quoted_and(names: list[str]) -> str:
    quoted = [f"'{n}'" for n in names]
    return ", ".join(quoted[:-1]) + f" and {quoted[-1]}" if len(quoted) > 1 else quoted[0]


def dns_subdomain(value: str) -> str:
    if len(value) > 253 or not _DNS_SUBDOMAIN.match(value):
        raise ValueError(
            f"'{value}' is not a valid name: use lowercase letters, digits, '-' and '.', "
            "starting and ending with a letter or digit (at most 253 characters)"
        )
    return value


def dns_label(value: str) -> str:
    """Validate a DNS-1123 label (namespaces, port names)."""
    if len(value) > 63 or not _DNS_LABEL.match(value):
        raise ValueError(
            f"'{value}' is not a valid DNS label: use lowercase letters, digits and '-', "
            "starting and ending with a letter or digit (at most 63 characters)"
        )
    return value


def is_ip(text: str) -> bool:
    """An IPv4 or IPv6 address (not a host name)."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _labels(value: dict[str, str]) -> dict[str, str]:
    for key, val in value.items():
        name = key.rsplit("/", 1)[-1]
        if len(name) > 63 or not _LABEL_NAME.match(name):
            raise ValueError(f"label key '{key}' is not valid: use letters, digits, '-', '_', '.'")
        if val and (len(val) > 63 or not _LABEL_NAME.match(val)):
            raise ValueError(
                f"label value '{val}' of '{key}' is not valid: at most 63 letters, digits, "
                "'-', '_' or '.', starting and ending with a letter or digit"
            )
    return value


Labels = Annotated[StrMap, AfterValidator(_labels)]


class ObjectMeta(KubeModel):
    """`metadata`: name and namespace identify the resource; server-set fields are kept."""

    KNOWN: ClassVar[frozenset[str]] = known(
        """creationTimestamp deletionGracePeriodSeconds deletionTimestamp finalizers
        generateName generation managedFields ownerReferences resourceVersion selfLink uid"""
    )

    name: Annotated[str, Strict(), AfterValidator(dns_subdomain)]
    namespace: Annotated[str, Strict(), AfterValidator(dns_label)] = "default"
    labels: Labels = Field(default_factory=dict)
    annotations: StrMap = Field(default_factory=dict)


class StringMatch(IstioModel):
    """Exactly one of `exact`, `prefix` (may be empty) or `regex` (RE2 syntax)."""

    exact: Str | None = None
    prefix: Str | None = None
    regex: Str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> StringMatch:
        check_one_of(self, ("exact", "prefix", "regex"), required=True)
        return self

    @property
    def match_type(self) -> str:
        """'exact', 'prefix' or 'regex'."""
        if self.exact is not None:
            return "exact"
        return "prefix" if self.prefix is not None else "regex"

    @property
    def value(self) -> str:
        return self.exact if self.exact is not None else self.prefix or self.regex or ""


class Percent(IstioModel):
    """A percentage, 0 to 100 with decimals."""

    value: Annotated[float, Strict(), Field(ge=0, le=100)] = 0.0


class PortSelector(IstioModel):
    number: PortNumber


def _no_wildcards(value: dict[str, str]) -> dict[str, str]:
    for key, val in value.items():
        if not key:
            raise ValueError(f"an empty label key is not allowed in a selector ('{key}: {val}')")
        if "*" in key or "*" in val:
            raise ValueError(f"wildcards are not allowed in a selector ('{key}: {val}')")
    return value


SelectorLabels = Annotated[StrMap, AfterValidator(_no_wildcards)]


class WorkloadSelector(IstioModel):
    """`workloadSelector` of DestinationRule (istio.type.v1beta1): `matchLabels`."""

    match_labels: SelectorLabels = Field(default_factory=dict)


PROTOCOLS = (
    "HTTP",
    "HTTPS",
    "GRPC",
    "GRPC-WEB",
    "HTTP2",
    "HTTP_PROXY",
    "MONGO",
    "MYSQL",
    "REDIS",
    "TCP",
    "TLS",
    "UDP",
)
"""Port protocols Istio understands (case-insensitive in YAML)."""


def _protocol(value: str) -> str:
    if value.upper() not in PROTOCOLS:
        raise ValueError(f"unknown protocol '{value}'; use one of {', '.join(PROTOCOLS)}")
    return value


Protocol = Annotated[str, Strict(), AfterValidator(_protocol)]
