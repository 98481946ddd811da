"""Telemetry precedence: mesh (root namespace) < namespace < workload, merged field by
field, as Istio does; what no Telemetry sets is left to MeshConfig (None here)."""

from __future__ import annotations

from plait.api import load_text
from plait.api.telemetry import IstioMetric
from plait.model.labels import Labels
from plait.model.proxy import Proxy, ProxyKind, node_id
from plait.model.snapshot import MeshSnapshot, build_snapshot
from plait.model.telemetry import Side, applicable, telemetry_for

DOC = """---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {{name: {name}, namespace: {ns}}}
spec: {spec}
"""


def snap(*docs: tuple[str, str, str]) -> MeshSnapshot:
    text = "".join(DOC.format(name=n, ns=ns, spec=spec) for n, ns, spec in docs)
    result = load_text(text, "telemetry.yaml")
    assert not result.errors, [str(m) for m in result.errors]
    return build_snapshot(result.resources, (), 1)


def proxy(app: str = "echo", namespace: str = "shop") -> Proxy:
    return Proxy(
        id=node_id(ProxyKind.SIDECAR, f"{app}-0", namespace),
        kind=ProxyKind.SIDECAR,
        workload=app,
        namespace=namespace,
        labels=Labels.of({"app": app}),
    )


MESH = (
    "mesh",
    "istio-system",
    "{tracing: [{randomSamplingPercentage: 50, "
    "customTags: {team: {literal: {value: core}}}}], accessLogging: [{}]}",
)
NAMESPACE = (
    "ns",
    "shop",
    "{tracing: [{randomSamplingPercentage: 0}], accessLogging: [{disabled: true}]}",
)
WORKLOAD = (
    "echo",
    "shop",
    "{selector: {matchLabels: {app: echo}}, tracing: [{match: {mode: "
    "SERVER}, randomSamplingPercentage: 100, customTags: {user: {header: {name: x-user, "
    "defaultValue: none}}}}], accessLogging: [{disabled: false, filter: {expression: "
    "'response.code >= 400'}}]}",
)


def test_workload_overrides_namespace_overrides_mesh() -> None:
    s = snap(MESH, NAMESPACE, WORKLOAD)
    names = [i.resource.metadata.name for i in applicable(s, proxy())]
    assert names == ["mesh", "ns", "echo"]
    t = telemetry_for(s, proxy())
    server, client = t.tracing_on(Side.SERVER), t.tracing_on(Side.CLIENT)
    assert server.sampling == 100 and client.sampling == 0  # the workload's is SERVER only
    assert set(server.custom_tags) == {"team", "user"} and set(client.custom_tags) == {"team"}
    log = t.access_log_on(Side.SERVER)
    assert not log.disabled and log.filter == "response.code >= 400"
    # another workload of the namespace gets the namespace's settings
    other = telemetry_for(s, proxy("client"))
    assert other.tracing_on(Side.SERVER).sampling == 0
    assert other.access_log_on(Side.CLIENT).disabled
    # and one of another namespace only the mesh's
    elsewhere = telemetry_for(s, proxy("echo", "default"))
    assert elsewhere.tracing_on(Side.SERVER).sampling == 50
    assert not elsewhere.access_log_on(Side.SERVER).disabled


def test_a_selector_in_another_namespace_or_not_matching_does_not_apply() -> None:
    s = snap(
        MESH,
        (
            "other",
            "default",
            "{selector: {matchLabels: {app: echo}}, accessLogging: [{disabled: true}]}",
        ),
    )
    assert [i.resource.metadata.name for i in applicable(s, proxy())] == ["mesh"]
    assert [i.resource.metadata.name for i in applicable(s, proxy("web", "default"))] == ["mesh"]


def test_the_first_by_name_of_several_namespace_wide_wins() -> None:
    s = snap(
        ("b", "shop", "{tracing: [{randomSamplingPercentage: 5}]}"),
        ("a", "shop", "{tracing: [{randomSamplingPercentage: 7}]}"),
    )
    assert telemetry_for(s, proxy()).tracing_on(Side.CLIENT).sampling == 7


def test_metric_overrides_per_side_and_later_levels_win() -> None:
    s = snap(
        ("mesh", "istio-system", "{metrics: [{overrides: [{disabled: true}]}]}"),
        (
            "ns",
            "shop",
            "{metrics: [{overrides: [{match: {metric: REQUEST_COUNT, mode: SERVER},"
            " disabled: false}]}]}",
        ),
    )
    t = telemetry_for(s, proxy())
    assert not t.metric_disabled(IstioMetric.REQUEST_COUNT, Side.SERVER)
    assert t.metric_disabled(IstioMetric.REQUEST_COUNT, Side.CLIENT)
    assert t.metric_disabled(IstioMetric.REQUEST_DURATION, Side.SERVER)


def test_no_telemetry_changes_nothing() -> None:
    t = telemetry_for(snap(), proxy())
    assert t.tracing_on(Side.CLIENT).sampling is None and not t.disabled_metrics
