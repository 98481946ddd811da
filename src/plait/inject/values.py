"""The injector's settings from the chart's `plait-sidecar-injector` ConfigMap (key
`values`, JSON; charts/plait/templates/sidecar-injector.yaml writes it). Pure; a wrong
field is an InjectionError naming it."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from plait.errors import InjectionError
from plait.inject.review import WebhookPolicy
from plait.inject.settings import InjectSettings, Resources

SOURCE = "ConfigMap plait-sidecar-injector, key values"


def _field(doc: Mapping[str, Any], name: str, kind: type, default: Any) -> Any:
    value = doc.get(name, default)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise InjectionError(f"{SOURCE}: {name} must be a {kind.__name__}, not {value!r}")
    return value


def _resources(doc: Mapping[str, Any], base: Resources) -> Resources:
    res = _field(doc, "resources", dict, {})
    requests = _field(res, "requests", dict, {})
    limits = _field(res, "limits", dict, {})
    return Resources(
        cpu_request=str(requests.get("cpu", "")),
        memory_request=str(requests.get("memory", "")),
        cpu_limit=str(limits.get("cpu", "")),
        memory_limit=str(limits.get("memory", "")),
    ) if res else base  # fmt: skip


def settings_from_values(text: str) -> tuple[InjectSettings, WebhookPolicy]:
    """The settings and the webhook policy the ConfigMap's `values` JSON describes."""
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise InjectionError(f"{SOURCE}: not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise InjectionError(f"{SOURCE}: must be a JSON object")
    d = InjectSettings()
    settings = InjectSettings(
        proxy_image=_field(doc, "proxyImage", str, d.proxy_image),
        image_pull_policy=_field(doc, "imagePullPolicy", str, d.image_pull_policy),
        xds_address=_field(doc, "xdsAddress", str, d.xds_address),
        ca_address=_field(doc, "caAddress", str, d.ca_address),
        trust_domain=_field(doc, "trustDomain", str, d.trust_domain),
        revision=_field(doc, "revision", str, d.revision),
        hold_application_until_proxy_starts=_field(
            doc, "holdApplicationUntilProxyStarts", bool, d.hold_application_until_proxy_starts
        ),
        resources=_resources(doc, d.resources),
        token_audience=_field(doc, "tokenAudience", str, d.token_audience),
        token_expiration_s=_field(doc, "tokenExpirationSeconds", int, d.token_expiration_s),
    )
    excluded = _field(doc, "excludedNamespaces", list, sorted(WebhookPolicy().excluded_namespaces))
    if not all(isinstance(n, str) for n in excluded):
        raise InjectionError(f"{SOURCE}: excludedNamespaces must be a list of names")
    return settings, WebhookPolicy(frozenset(excluded))
