"""ClusterLoadAssignments: subset label filtering, order, weights, pipes."""

from __future__ import annotations

from plait.model.labels import Labels
from plait.model.registry import Endpoint
from plait.translate.endpoints import load_assignment

V1 = Endpoint("127.0.0.1", 20002, Labels.of({"app": "reviews", "version": "v1"}))
V2 = Endpoint("127.0.0.1", 20001, Labels.of({"app": "reviews", "version": "v2"}), weight=3)
V1B = Endpoint("10.0.0.1", 80, Labels.of({"app": "reviews", "version": "v1"}))


def addresses(cla: object) -> list[tuple[str, int, int]]:
    return [
        (
            lb.endpoint.address.socket_address.address,
            lb.endpoint.address.socket_address.port_value,
            lb.load_balancing_weight.value,
        )
        for loc in cla.endpoints  # type: ignore[attr-defined]
        for lb in loc.lb_endpoints
    ]


def test_no_subset_takes_every_endpoint_sorted_by_address_and_port() -> None:
    cla = load_assignment("outbound|8080||reviews", [V1, V2, V1B], {})
    assert cla.cluster_name == "outbound|8080||reviews"
    assert len(cla.endpoints) == 1
    assert addresses(cla) == [("10.0.0.1", 80, 1), ("127.0.0.1", 20001, 3), ("127.0.0.1", 20002, 1)]


def test_subset_labels_filter_endpoints() -> None:
    assert addresses(load_assignment("c", [V1, V2, V1B], {"version": "v1"})) == [
        ("10.0.0.1", 80, 1),
        ("127.0.0.1", 20002, 1),
    ]
    assert addresses(load_assignment("c", [V1, V2, V1B], {"version": "v2"})) == [
        ("127.0.0.1", 20001, 3)
    ]


def test_no_match_is_an_empty_assignment_without_localities() -> None:
    cla = load_assignment("c", [V1, V2], {"version": "v3"})
    assert cla.cluster_name == "c"
    assert len(cla.endpoints) == 0


def test_unix_endpoint_is_a_pipe() -> None:
    cla = load_assignment("c", [Endpoint("unix:///run/app.sock", 80)], {})
    (lb,) = cla.endpoints[0].lb_endpoints
    assert lb.endpoint.address.WhichOneof("address") == "pipe"
    assert lb.endpoint.address.pipe.path == "/run/app.sock"
