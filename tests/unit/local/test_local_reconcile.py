"""diff_replicas: what a Deployment edit stops and starts."""

from __future__ import annotations

from plait.local.plan import ReplicaSpec
from plait.local.reconcile import diff_replicas
from plait.model.labels import Labels


def spec(instance: str, env: str = "a") -> ReplicaSpec:
    return ReplicaSpec(
        instance=instance,
        workload=instance.rsplit("-", 1)[0],
        namespace="default",
        labels=Labels.of({"app": "orders"}),
        service_account="orders",
        command=("python", "-m", "app.orders"),
        env=(("MODE", env),),
    )


def test_nothing_changed_is_no_change() -> None:
    change = diff_replicas([spec("orders-0")], [spec("orders-0")])
    assert not change
    assert change.stop == () and change.start == ()


def test_scale_up_starts_only_the_new_replica() -> None:
    change = diff_replicas([spec("orders-0")], [spec("orders-0"), spec("orders-1")])
    assert change.stop == ()
    assert [s.instance for s in change.start] == ["orders-1"]


def test_scale_down_stops_only_the_removed_replicas() -> None:
    change = diff_replicas(
        [spec("orders-0"), spec("orders-1"), spec("orders-2")], [spec("orders-0")]
    )
    assert change.stop == ("orders-1", "orders-2")
    assert change.start == ()


def test_a_changed_replica_is_replaced() -> None:
    change = diff_replicas([spec("orders-0", env="a")], [spec("orders-0", env="b")])
    assert change.stop == ("orders-0",)
    assert [s.env for s in change.start] == [(("MODE", "b"),)]
