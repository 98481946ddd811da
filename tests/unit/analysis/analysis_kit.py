"""Small builders for analysis tests: YAML text → vetted resources → snapshot → messages."""

from __future__ import annotations

from plait.analysis import analyze, vet
from plait.api import load_text
from plait.errors import ConfigMessage, Severity
from plait.model.snapshot import MeshSnapshot, build_snapshot

SERVICES = """
apiVersion: v1
kind: Service
metadata: {name: reviews}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: ratings}
spec:
  selector: {app: ratings}
  ports: [{name: http, port: 8080}, {name: grpc, port: 9090}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: shop-gateway}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*"]
"""


def vs(name: str, body: str, hosts: str = "[reviews]", extra: str = "") -> str:
    """A VirtualService document; `body` is the YAML under `spec` after `hosts`."""
    return f"""
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: {name}{extra}}}
spec:
  hosts: {hosts}
{body}"""


def snapshot_of(text: str, file: str = "mesh.yaml") -> MeshSnapshot:
    result = vet(load_text(SERVICES + text, file))
    assert not result.errors, [str(m) for m in result.errors]
    return build_snapshot(result.resources, (), 1, result.messages)


def warnings_of(text: str) -> list[tuple[str, str, str]]:
    """(resource name, path, message) of every analysis warning."""
    found = analyze(snapshot_of(text))
    assert all(m.severity is Severity.WARNING for m in found)
    return [(m.name, m.path, m.message) for m in found]


def problems(text: str) -> list[ConfigMessage]:
    """Messages `vet` adds to what loading `text` (alone, no SERVICES) gives."""
    loaded = load_text(text, "mesh.yaml")
    return list(vet(loaded).messages[len(loaded.messages) :])
