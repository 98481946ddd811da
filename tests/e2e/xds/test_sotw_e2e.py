"""The State of the World with a real Envoy (an Envoy bootstrapped with
`XdsProtocol.SOTW`): plait's ADS server keeps, per stream, the config's own mappings as
what it sent (`plait.xds.sent`), and from them sends each change: a route change is one
RDS response; an endpoint change is one EDS response with the changed endpoint set only;
clusters come and go whole (CDS is a wildcard type); a restart of the server resyncs
Envoy on a new stream.

What the server sent is read from its counters (`pushes`: responses by type;
`resources_sent`: the resources inside them); what Envoy runs, from its config dump and
from traffic through its listener.
"""

from __future__ import annotations

from collections import Counter

from ads_testkit import endpoints
from agent_e2e import free_port
from deltakit import AdsHarness, dynamic_clusters, mesh_config

from plait.agent.bootstrap import XdsProtocol
from plait.translate.typeurls import CLUSTER, ENDPOINT


class Sent:
    """What the server has sent since the last `since()`: (responses, resources) by type."""

    def __init__(self, harness: AdsHarness) -> None:
        self.harness = harness
        self.pushes: Counter[str] = Counter()
        self.resources: Counter[str] = Counter()

    def since(self) -> tuple[dict[str, int], dict[str, int]]:
        assert self.harness.server is not None
        counters = self.harness.server.counters
        pushes, resources = Counter(counters.pushes), Counter(counters.resources_sent)
        out = dict(+(pushes - self.pushes)), dict(+(resources - self.resources))
        self.pushes, self.resources = pushes, resources
        return out


async def test_envoy_on_sotw_follows_routes_endpoints_clusters_and_a_restart(
    harness: AdsHarness,
) -> None:
    a, b, b2 = [await harness.backend(n) for n in ("a", "b", "b2")]
    listen = free_port()
    first = mesh_config({"a": a, "b": b}, "a", listen)
    envoy = await harness.start(first, listen, "a", XdsProtocol.SOTW)
    sent = Sent(harness)
    sent.since()

    # route to b: the route table goes, nothing else
    to_b = mesh_config({"a": a, "b": b}, "b", listen)
    await harness.synced(harness.publish(to_b))
    await harness.answers(listen, "b")
    assert sent.since() == ({"rds": 1}, {"rds": 1})

    # b's endpoints move to another backend: one EDS response with b's set only
    moved = to_b.replacing(ENDPOINT, {**to_b.resources(ENDPOINT), "b": endpoints("b", [b2])})
    await harness.synced(harness.publish(moved))
    await harness.answers(listen, "b2")
    assert sent.since() == ({"eds": 1}, {"eds": 1})

    # cluster a goes: the whole set of clusters again, b only
    gone = moved.replacing(CLUSTER, {"b": moved.resources(CLUSTER)["b"]})
    gone = gone.replacing(ENDPOINT, {"b": moved.resources(ENDPOINT)["b"]})
    await harness.synced(harness.publish(gone))
    assert set(await dynamic_clusters(envoy)) == {"b"}
    await harness.answers(listen, "b2")
    pushes, resources = sent.since()
    assert (pushes.get("cds"), resources.get("cds")) == (1, 1)
    assert resources.get("eds", 0) == 0  # b's endpoints did not change: not sent again

    # a restart: Envoy resyncs on a new stream (ACKing the versions it runs), and runs
    # what it ran
    server = await harness.restart_server()
    await harness.synced(harness.source.generation)
    [status] = server.statuses()
    assert status.types["cds"].acked_version == gone.version(CLUSTER)
    assert status.types["eds"].acked_version == gone.version(ENDPOINT)
    assert set(await dynamic_clusters(envoy)) == {"b"}
    await harness.answers(listen, "b2")
