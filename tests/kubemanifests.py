"""Kubernetes manifests the e2e tests apply with kubectl."""

from __future__ import annotations

from typing import Any


def web_app(namespace: str) -> list[dict[str, Any]]:
    """The Service `web` (port 80 → the named port http-web) and its Deployment of one
    pod serving HTTP on 8080 (the test node runs the python image as the venv's)."""
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": namespace},
        "spec": {
            "replicas": 1, "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
                    "name": "web", "image": "docker.io/library/python:3.12-slim",
                    "args": ["-m", "http.server", "8080", "--bind", "0.0.0.0"],
                    "ports": [{"name": "http-web", "containerPort": 8080}],
                    "readinessProbe": {"tcpSocket": {"port": "http-web"}},
                }]},
            },
        },
    }  # fmt: skip
    service = {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": namespace},
        "spec": {"selector": {"app": "web"},
                 "ports": [{"name": "http", "port": 80, "targetPort": "http-web"}]},
    }  # fmt: skip
    return [deployment, service]
