"""plait: a service mesh whose control plane speaks the Istio API to Envoy over xDS."""

__version__ = "0.1.0"
