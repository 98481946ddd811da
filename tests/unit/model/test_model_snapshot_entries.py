"""build_snapshot for what leaves the registry: ServiceEntry endpoints by resolution, and
the mesh-wide settings of the mesh ConfigMap."""

from __future__ import annotations

from collections.abc import Sequence

from plait.api import load_text
from plait.model.labels import Labels
from plait.model.meshsettings import MeshSettings, OutboundMode
from plait.model.registry import Endpoint, PortMap, Resolution, WorkloadInstance
from plait.model.snapshot import MeshSnapshot, build_snapshot


def snapshot(text: str, instances: Sequence[WorkloadInstance] = ()) -> MeshSnapshot:
    result = load_text(text, "mesh.yaml")
    assert not result.errors, [str(m) for m in result.errors]
    return build_snapshot(result.resources, instances, 1)


def mesh_config(mode: str, namespace: str = "istio-system") -> str:
    return f"""apiVersion: v1
kind: ConfigMap
metadata: {{name: istio, namespace: {namespace}}}
data:
  mesh: |
    outboundTrafficPolicy: {{mode: {mode}}}
"""


ENTRIES = """apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: dns}
spec:
  hosts: [external.test]
  resolution: DNS
  ports:
  - {number: 80, name: http, protocol: HTTP}
  - {number: 8443, name: http-alt, protocol: HTTP, targetPort: 9443}
  endpoints:
  - {address: localhost, ports: {http: 8081}, labels: {pool: a}, weight: 3}
  - {address: backup.example.com}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: wild}
spec:
  hosts: ["*.example.org"]
  resolution: NONE
  ports: [{number: 80, name: http}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: vms, namespace: team}
spec:
  hosts: [vm.internal]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 8080, name: http}]
  workloadSelector: {labels: {app: vm}}
"""


def test_without_a_mesh_config_the_outbound_mode_is_allow_any() -> None:
    assert snapshot(ENTRIES).mesh == MeshSettings(OutboundMode.ALLOW_ANY)


def test_the_mesh_config_map_sets_the_outbound_mode() -> None:
    snap = snapshot(ENTRIES + "---\n" + mesh_config("REGISTRY_ONLY"))
    assert snap.mesh.outbound_mode is OutboundMode.REGISTRY_ONLY


def test_a_config_map_named_istio_outside_the_root_namespace_is_not_the_mesh_config() -> None:
    snap = snapshot(mesh_config("REGISTRY_ONLY", namespace="default"))
    assert snap.mesh.outbound_mode is OutboundMode.ALLOW_ANY


def test_dns_entry_endpoints_keep_their_addresses_ports_labels_and_weights() -> None:
    snap = snapshot(ENTRIES)
    assert snap.endpoints_for("external.test", 80) == (
        Endpoint("localhost", 8081, Labels.of({"pool": "a"}), weight=3),
        Endpoint("backup.example.com", 80),
    )
    # no per-endpoint number for `http-alt`: the port's targetPort
    assert [e.port for e in snap.endpoints_for("external.test", 8443)] == [9443, 9443]


def test_a_wildcard_none_entry_is_a_service_without_endpoints() -> None:
    snap = snapshot(ENTRIES)
    wild = snap.service("*.example.org")
    assert wild is not None and wild.resolution is Resolution.NONE
    assert snap.endpoints_for("*.example.org", 80) == ()


def test_a_workload_selector_selects_replicas_in_the_entry_namespace() -> None:
    def vm(name: str, namespace: str, port: int) -> WorkloadInstance:
        labels = Labels.of({"app": "vm"})
        return WorkloadInstance(
            name, "vm", namespace, labels, "vm", "127.0.0.1", PortMap.all_to(port)
        )

    snap = snapshot(ENTRIES, [vm("vm-0", "team", 20001), vm("vm-1", "other", 20002)])
    eps = snap.endpoints_for("vm.internal", 8080)
    assert [(e.instance, e.port) for e in eps] == [("vm-0", 20001)]


def test_only_the_entry_fields_plait_does_not_apply_are_warned_about() -> None:
    text = """apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: vms}
spec:
  hosts: [vm.internal]
  addresses: [10.1.0.0/24]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 8080, name: http, targetPort: 9090}]
  workloadSelector: {labels: {app: vm}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: dns}
spec:
  hosts: [external.test]
  resolution: DNS
  ports: [{number: 80, name: http}]
  endpoints: [{address: localhost, ports: {http: 8081}, labels: {a: b}, weight: 2, locality: r/z}]
"""
    warnings = load_text(text, "mesh.yaml").warnings
    assert sorted(w.path for w in warnings) == ["spec.addresses", "spec.endpoints[0].locality"]
