"""The status plait writes (plait.kube.status): what an object should carry, compared with
what it carries, so that a write (which comes back as a watch event) is not repeated."""

from __future__ import annotations

from plait.kube.status import current, desired, patch


def test_an_object_with_our_status_needs_no_second_write() -> None:
    want = desired(["spec.hosts: is required"])
    assert want is not None
    written = patch(want, 3)["status"]
    obj = {"metadata": {"generation": 3}, "status": written}
    assert current(obj) == want
    assert written["conditions"][0]["observedGeneration"] == 3


def test_a_fixed_object_loses_our_status_and_others_are_left_alone() -> None:
    assert desired([]) is None
    assert current({"status": {"conditions": [{"type": "Reconciled", "status": "True"}]}}) is None
    assert patch(None, 4) == {"status": {"conditions": None, "validationMessages": None}}
