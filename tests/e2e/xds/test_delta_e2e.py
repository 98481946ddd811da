"""Delta xDS with real Envoys: plait's bootstrap asks for DeltaAggregatedResources, and
the ADS server sends only what changed, keeps a NACK to the resource Envoy refused, and
after a reconnect resends only what Envoy does not already hold.

What the server sent is read from its counters (`resources_sent`, `removals_sent`: the
resources inside the responses, by type); what Envoy runs, from its config dump and from
traffic through its listener.
"""

from __future__ import annotations

from collections import Counter

from agent_e2e import eventually, free_port
from deltakit import AdsHarness, dynamic_clusters, mesh_config
from envoy.config.cluster.v3 import cluster_pb2

from plait.translate.resource import Resource
from plait.translate.typeurls import CLUSTER
from plait.xds import SyncState


def sent(harness: AdsHarness) -> Counter[str]:
    assert harness.server is not None
    return +Counter(harness.server.counters.resources_sent)


def removed(harness: AdsHarness) -> Counter[str]:
    assert harness.server is not None
    return +Counter(harness.server.counters.removals_sent)


def bad_cluster(name: str) -> Resource:
    """A cluster Envoy refuses when it builds it (a STATIC cluster cannot have the load
    balancing policy CLUSTER_PROVIDED); valid protobuf, so the rest of its response is
    applied. plait's translation never makes one: the test publishes it to the server."""
    c = cluster_pb2.Cluster(
        name=name, type=cluster_pb2.Cluster.STATIC, lb_policy=cluster_pb2.Cluster.CLUSTER_PROVIDED
    )
    c.connect_timeout.FromMilliseconds(1000)
    return Resource.pack(name, c)


async def test_envoy_gets_added_changed_and_removed_resources_one_by_one(
    harness: AdsHarness,
) -> None:
    a, b = await harness.backend("a"), await harness.backend("b")
    listen = free_port()
    envoy = await harness.start(mesh_config({"a": a}, "a", listen), listen, "a")
    assert sent(harness) == {"cds": 1, "eds": 1, "lds": 1, "rds": 1}

    # add cluster b and route to it: b, its endpoints and the route table, nothing else
    added = mesh_config({"a": a, "b": b}, "b", listen)
    await harness.synced(harness.publish(added))
    await harness.answers(listen, "b")
    assert sent(harness) == {"cds": 2, "eds": 2, "lds": 1, "rds": 2}
    held = await dynamic_clusters(envoy)
    assert {n: c["version_info"] for n, c in held.items()} == {
        n: r.digest for n, r in added.resources(CLUSTER).items()
    }  # a resource's version is the hash of the bytes every proxy shares

    # change cluster a: a again, and its endpoints (the cluster warms on them)
    changed = mesh_config({"a": a, "b": b}, "b", listen, timeouts={"a": 250})
    await harness.synced(harness.publish(changed))
    assert sent(harness) == {"cds": 3, "eds": 3, "lds": 1, "rds": 2}
    held = await dynamic_clusters(envoy)
    assert held["a"]["cluster"]["connect_timeout"] == "0.250s"

    # remove cluster a: removals only (the cluster, then its endpoints), no resource
    await harness.synced(harness.publish(mesh_config({"b": b}, "b", listen)))
    assert sent(harness) == {"cds": 3, "eds": 3, "lds": 1, "rds": 2}
    assert removed(harness) == {"cds": 1, "eds": 1}
    assert set(await dynamic_clusters(envoy)) == {"b"}
    await harness.answers(listen, "b")


async def test_a_nacked_resource_leaves_the_others_applied(harness: AdsHarness) -> None:
    a, c = await harness.backend("a"), await harness.backend("c")
    listen = free_port()
    envoy = await harness.start(mesh_config({"a": a}, "a", listen), listen, "a")
    server = harness.server
    assert server is not None

    # one response carries a good new cluster and a bad one: Envoy applies the good one
    harness.publish(mesh_config({"a": a, "c": c}, "a", listen, extra=[bad_cluster("bad")]))

    async def nacked() -> bool:
        return server.statuses()[0].types["cds"].state is SyncState.NACK

    await eventually(nacked, 10, "the bad cluster is NACKed")
    status = server.statuses()[0]
    assert status.nack is not None and "bad" in status.nack  # Envoy's words, as for SotW
    assert status.types["cds"].nack == status.nack
    assert status.types["lds"].state is SyncState.SYNCED
    assert set(await dynamic_clusters(envoy)) == {"a", "c"}
    await harness.answers(listen, "a")
    assert sent(harness)["cds"] == 3  # a, then c and bad

    # a later change sends only what changed, not the refused cluster again; the NACK
    # stands while the refused version is what the config holds
    harness.publish(
        mesh_config({"a": a, "c": c}, "c", listen, timeouts={"c": 300}, extra=[bad_cluster("bad")])
    )
    await harness.answers(listen, "c")

    async def c_changed() -> bool:
        held = await dynamic_clusters(envoy)
        return held["c"]["cluster"]["connect_timeout"] == "0.300s"

    await eventually(c_changed, 10, "cluster c has its new timeout")
    assert sent(harness)["cds"] == 4
    assert server.statuses()[0].types["cds"].state is SyncState.NACK

    # without the bad cluster the proxy is in sync again (nothing was ever applied of it)
    fixed = mesh_config({"a": a, "c": c}, "c", listen, timeouts={"c": 300})
    await harness.synced(harness.publish(fixed))
    status = server.statuses()[0]
    assert status.nack is None and set(status.sync.values()) == {"SYNCED"}
    assert sent(harness)["cds"] == 4 and set(await dynamic_clusters(envoy)) == {"a", "c"}


async def test_a_reconnect_resends_only_what_changed_meanwhile(harness: AdsHarness) -> None:
    a, b = await harness.backend("a"), await harness.backend("b")
    listen = free_port()
    envoy = await harness.start(mesh_config({"a": a, "b": b}, "a", listen), listen, "a")
    assert sent(harness) == {"cds": 2, "eds": 2, "lds": 1, "rds": 1}

    # the control plane goes away; meanwhile cluster b and the routes change
    await harness.stop_server()
    harness.publish(mesh_config({"a": a, "b": b}, "b", listen, timeouts={"b": 400}))
    await harness.start_server()  # a new server: it knows only what Envoy tells it
    await harness.synced(harness.source.generation)

    assert sent(harness) == {"cds": 1, "eds": 1, "rds": 1}  # b (and its endpoints), routes
    await harness.answers(listen, "b")
    held = await dynamic_clusters(envoy)
    assert set(held) == {"a", "b"} and held["b"]["cluster"]["connect_timeout"] == "0.400s"
