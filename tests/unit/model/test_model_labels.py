"""Labels: an immutable, hashable mapping with Kubernetes selector matching."""

from __future__ import annotations

import pytest

from plait.model.labels import Labels


def test_of_sorts_pairs_so_equal_sets_are_equal_and_hash_alike() -> None:
    a = Labels.of({"version": "v1", "app": "reviews"})
    b = Labels.of({"app": "reviews", "version": "v1"})
    assert a.items_ == (("app", "reviews"), ("version", "v1"))
    assert a == b
    assert {a: 1}[b] == 1


def test_behaves_as_a_read_only_mapping() -> None:
    labels = Labels.of({"app": "reviews", "version": "v1"})
    assert labels["app"] == "reviews"
    assert labels.get("missing") is None
    assert list(labels) == ["app", "version"]
    assert len(labels) == 2
    assert "version" in labels
    assert labels.as_dict() == {"app": "reviews", "version": "v1"}
    with pytest.raises(KeyError):
        labels["missing"]


def test_of_none_and_default_are_empty() -> None:
    assert Labels.of(None) == Labels() == Labels.of({})
    assert len(Labels()) == 0


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ({}, True),
        ({"app": "reviews"}, True),
        ({"app": "reviews", "version": "v1"}, True),
        ({"app": "reviews", "version": "v2"}, False),
        ({"tier": "backend"}, False),
    ],
)
def test_matches_needs_every_selector_pair(selector: dict[str, str], expected: bool) -> None:
    assert Labels.of({"app": "reviews", "version": "v1"}).matches(selector) is expected


def test_empty_labels_match_only_the_empty_selector() -> None:
    assert Labels().matches({})
    assert not Labels().matches({"app": "reviews"})
