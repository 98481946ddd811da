"""The chart's injector objects: the MutatingWebhookConfiguration has exactly the
selectors of plait.inject.webhook_configuration (one source of truth, checked), the
ConfigMap is what the injector reads, and its RBAC reaches that one configuration and
ConfigMaps (the published trust bundle) only."""

from __future__ import annotations

import pytest
from test_charts_render import NAMESPACE, objects, template

from plait.errors import InjectionError
from plait.inject import (
    InjectSettings,
    Resources,
    WebhookEndpoint,
    settings_from_values,
    webhook_configuration,
)

NAME = f"plait-sidecar-injector-{NAMESPACE}"


def test_webhooks_are_the_injectors_own_configuration() -> None:
    docs = objects(template("plait", "sidecarInjector.failurePolicy=Ignore",
                            "sidecarInjector.revision=canary"))  # fmt: skip
    rendered = docs[("MutatingWebhookConfiguration", NAME)]
    expected = webhook_configuration(
        WebhookEndpoint(service=(NAMESPACE, "plaitd", 443)),
        b"",
        revision="canary",
        excluded_namespaces=(NAMESPACE, "kube-system"),
        failure_policy="Ignore",
        name=NAME,
    )
    for hook in expected["webhooks"]:
        del hook["clientConfig"]["caBundle"]  # plaitd fills it in
    assert rendered["webhooks"] == expected["webhooks"]


def test_configmap_gives_the_injector_its_settings() -> None:
    docs = objects(template("plait", "global.tag=2.0", "meshConfig.trustDomain=example.org",
                            "sidecarInjector.resources.limits.cpu=1",
                            "sidecarInjector.holdApplicationUntilProxyStarts=false"))  # fmt: skip
    settings, policy = settings_from_values(
        docs[("ConfigMap", "plait-sidecar-injector")]["data"]["values"]
    )
    assert settings == InjectSettings(
        proxy_image="ghcr.io/plait-mesh/plait-proxy:2.0",
        xds_address=f"plaitd.{NAMESPACE}.svc:15010",
        ca_address=f"https://plaitd.{NAMESPACE}.svc:15012",
        trust_domain="example.org",
        hold_application_until_proxy_starts=False,
        resources=Resources("100m", "128Mi", "1", "1024Mi"),
    )
    assert policy.excluded_namespaces == {NAMESPACE, "kube-system"}


def test_injector_rbac_is_its_one_configuration() -> None:
    docs = objects(template("plait"))
    webhook, configmaps = docs[("ClusterRole", f"plaitd-injector-{NAMESPACE}")]["rules"]
    assert webhook["resources"] == ["mutatingwebhookconfigurations"]
    assert webhook["resourceNames"] == [NAME] and "create" not in webhook["verbs"]
    # the root-cert publisher: ConfigMaps, without delete or update
    assert configmaps["resources"] == ["configmaps"]
    assert set(configmaps["verbs"]) == {"get", "list", "watch", "create", "patch"}
    binding = docs[("ClusterRoleBinding", f"plaitd-injector-{NAMESPACE}")]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "plaitd", "namespace": NAMESPACE}
    ]


def test_disabled_injector_renders_none_of_it() -> None:
    kinds = {kind for kind, _ in objects(template("plait", "sidecarInjector.enabled=false"))}
    assert "MutatingWebhookConfiguration" not in kinds


@pytest.mark.parametrize(
    ("values", "message"),
    [("[", "not JSON"), ("[]", "JSON object"), ('{"tokenExpirationSeconds": "12h"}',
      "tokenExpirationSeconds must be a int"), ('{"excludedNamespaces": [1]}', "list of names")],
)  # fmt: skip
def test_bad_values_name_the_field(values: str, message: str) -> None:
    with pytest.raises(InjectionError, match=message):
        settings_from_values(values)
