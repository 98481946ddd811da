"""Sidecar injection: one pure `inject(pod, settings)` (pod.py), used by the admission
webhook (review.py: AdmissionReview in, JSONPatch out; webhookconfig.py: the
MutatingWebhookConfiguration) and by `plait kube-inject` (manifests.py)."""

from plait.inject.manifests import inject_manifests
from plait.inject.pod import inject, inject_choice, is_injected
from plait.inject.review import WebhookPolicy, json_patch, review
from plait.inject.settings import InjectSettings, Resources
from plait.inject.values import settings_from_values
from plait.inject.webhookconfig import WebhookEndpoint, webhook_configuration

__all__ = [
    "InjectSettings",
    "Resources",
    "WebhookEndpoint",
    "WebhookPolicy",
    "inject",
    "inject_choice",
    "inject_manifests",
    "is_injected",
    "json_patch",
    "review",
    "settings_from_values",
    "webhook_configuration",
]
