"""Network namespace names: unique per pod even when pod names are long."""

from __future__ import annotations

from plait.podnet.network import _slug


def test_long_pod_names_sharing_a_prefix_get_different_slugs() -> None:
    a = _slug("istio-ingressgateway-594db467b5-2k8k9")
    b = _slug("istio-ingressgateway-594db467b5-mtjd6")
    assert a != b and len(a) == len(b) == 30 and a.startswith("istio-ingressgateway-59")
    assert _slug("reviews-v1-6445d9c96f-mhn4p") == "reviews-v1-6445d9c96f-mhn4p"
