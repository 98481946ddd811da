"""Istio's request families from Envoy's own stats, under Istio's names and labels. No I/O.

Envoy counts every request itself (`translate.metrics`): its `/stats/prometheus` writes
`envoy_istiocustom_istio_requests_total{…}` and the three histograms, with one tag per
label and two raw tags on destination reports. `rewrite(text)` turns that exposition into
Istio's: the `envoy_istiocustom_` prefix goes, every series gets Istio's label set in
Istio's order (`LABEL_NAMES`), and

- on a destination report the caller's side comes from `source_peer` (the caller's
  sidecar's claim) and `source_principal` (its certificate): the claim is believed only
  when its namespace and service account are the certificate's; otherwise the caller is
  `unknown`, in the certificate's namespace when there is one;
- an empty value (an operator with nothing to say: no upstream host, no TLS) becomes
  Istio's default: `unknown`; `0` for `response_code`, `-` for `response_flags`, `http`
  for `request_protocol`; `grpc_response_status` is blank on HTTP series;
- series that end up with the same labels are summed (only ever `unknown` peers).

Everything else in the text (Envoy's own `envoy_*` stats) passes through unchanged. The
work is proportional to the number of series, not to the number of requests.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

from plait.model.identity import SpiffeId, SpiffeIdError
from plait.translate.metrics import (
    CLAIM_KEYS,
    CLAIM_SEPARATOR,
    CLUSTER_ID,
    DURATION,
    LABEL_NAMES,
    REQUEST_BYTES,
    REQUESTS,
    RESPONSE_BYTES,
    STAT_PREFIX,
    UNKNOWN,
)
from plait.translate.tcpmetrics import (
    TCP_CLOSED,
    TCP_FAMILIES,
    TCP_LABEL_NAMES,
    TCP_OPENED,
    TCP_RECEIVED,
    TCP_SENT,
)

ENVOY_PREFIX = f"envoy_{STAT_PREFIX}_"
_TYPES = {REQUESTS: "counter", DURATION: "histogram", REQUEST_BYTES: "histogram"}
_TYPES[RESPONSE_BYTES] = "histogram"
_TYPES.update(dict.fromkeys(TCP_FAMILIES, "counter"))
_DEFAULTS = {"response_code": "0", "response_flags": "-", "request_protocol": "http"}
_HELP = {
    REQUESTS: "Requests handled by this proxy (Istio standard).",
    DURATION: "Request duration in milliseconds.",
    REQUEST_BYTES: "Request body sizes in bytes.",
    RESPONSE_BYTES: "Response body sizes in bytes.",
    TCP_SENT: "Bytes sent to the caller over TCP connections (Istio standard).",
    TCP_RECEIVED: "Bytes received from the caller over TCP connections (Istio standard).",
    TCP_OPENED: "TCP connections opened (Istio standard).",
    TCP_CLOSED: "TCP connections closed (Istio standard).",
}


def _empty(value: str | None) -> bool:
    return value is None or value in ("", "-")


def caller(peer: str | None, principal: str | None) -> dict[str, str]:
    """The source_* labels of a destination report (see the module docstring)."""
    identity: SpiffeId | None = None
    if not _empty(principal):
        try:
            identity = SpiffeId.parse(str(principal))
        except SpiffeIdError:
            identity = None
    side = dict.fromkeys(
        ("workload", "app", "version", "canonical_service", "canonical_revision", "cluster"),
        UNKNOWN,
    )
    side["workload_namespace"] = identity.namespace if identity is not None else UNKNOWN
    parts = str(peer).split(CLAIM_SEPARATOR) if not _empty(peer) else []
    if identity is not None and len(parts) == len(CLAIM_KEYS):
        claim = dict(zip(CLAIM_KEYS, parts, strict=True))
        if (
            claim["workload_namespace"] == identity.namespace
            and claim["service_account"] == identity.service_account
        ):
            side.update({k: v for k, v in claim.items() if k != "service_account"})
            side["cluster"] = CLUSTER_ID
    out = {f"source_{k}": v for k, v in side.items()}
    out["source_principal"] = identity.uri if identity is not None else UNKNOWN
    return out


def istio_labels(tags: Mapping[str, str], names: tuple[str, ...] = LABEL_NAMES) -> tuple[str, ...]:
    """Istio's label values, in `names` order (LABEL_NAMES, or TCP_LABEL_NAMES for the
    istio_tcp_* families), for one Envoy series' tags."""
    labels = {k: v for k, v in tags.items() if k not in ("source_peer", "le")}
    if tags.get("reporter") == "destination":
        labels.update(caller(tags.get("source_peer"), tags.get("source_principal")))
    out: list[str] = []
    for name in names:
        value = labels.get(name)
        if name == "grpc_response_status":
            grpc = labels.get("request_protocol") == "grpc"
            out.append(str(value) if grpc and not _empty(value) else "")
        elif name == "response_flags":
            out.append(str(value) if value else "-")
        else:
            out.append(_DEFAULTS.get(name, UNKNOWN) if _empty(value) else str(value))
    return tuple(out)


@dataclass
class _Family:
    kind: str
    samples: dict[tuple[str, tuple[str, ...], str], float] = field(default_factory=dict)

    def add(self, name: str, labels: tuple[str, ...], le: str, value: float) -> None:
        key = (name, labels, le)
        self.samples[key] = self.samples.get(key, 0.0) + value


def _number(value: float) -> str:
    return str(int(value)) if value == int(value) else repr(value)


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _names(family: str) -> tuple[str, ...]:
    return TCP_LABEL_NAMES if family in TCP_FAMILIES else LABEL_NAMES


def _render(name: str, family: _Family) -> Iterable[str]:
    yield f"# HELP {name} {_HELP[name]}"
    yield f"# TYPE {name} {family.kind}"
    for (sample, labels, le), value in family.samples.items():
        pairs = [f'{n}="{_escape(v)}"' for n, v in zip(_names(name), labels, strict=True)]
        if le:
            pairs.append(f'le="{le}"')
        yield f"{sample}{{{','.join(pairs)}}} {_number(value)}"


def rewrite(text: str) -> str:
    """Envoy's `/stats/prometheus` text with its istiocustom families under Istio's names
    and labels (see the module docstring); the rest unchanged."""
    ours: list[str] = []
    rest: list[str] = []
    for line in text.splitlines():
        is_ours = line.startswith(ENVOY_PREFIX) or (
            line.startswith("#") and f" {ENVOY_PREFIX}" in line
        )
        (ours if is_ours else rest).append(line)
    families: dict[str, _Family] = {}
    if ours:
        parsed = text_string_to_metric_families("\n".join(ours) + "\n")
        for parsed_family in parsed:
            for s in parsed_family.samples:
                sample = s.name.removeprefix(ENVOY_PREFIX)
                base = next((b for b in _TYPES if sample.startswith(b)), None)
                if base is None:
                    continue
                family = families.setdefault(base, _Family(_TYPES[base]))
                labels = istio_labels(s.labels, _names(base))
                family.add(sample, labels, s.labels.get("le", ""), s.value)
    lines = [line for line in rest if line]
    for name in (REQUESTS, DURATION, REQUEST_BYTES, RESPONSE_BYTES, *TCP_FAMILIES):
        if name in families:
            lines.extend(_render(name, families[name]))
    return "\n".join(lines) + "\n"
