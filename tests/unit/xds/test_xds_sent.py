"""`SentNames`: what a SotW stream sent of a named type, over the config's shared mapping."""

from __future__ import annotations

from plait.translate.resource import Resource
from plait.translate.typeurls import ENDPOINT
from plait.xds.sent import SentNames


def res(name: str, version: str = "1") -> Resource:
    return Resource(ENDPOINT, name, f"{name}-{version}".encode(), f"{name}-{version}")


def test_a_rebase_holds_the_mapping_for_the_names_given_and_no_others() -> None:
    base = {"a": res("a"), "b": res("b"), "c": res("c")}
    sent = SentNames()
    sent.rebase(base, frozenset({"a", "b"}))
    assert sent.get("a") is base["a"] and sent["b"] is base["b"]
    assert "c" not in sent  # in the config, never subscribed: never sent
    assert sorted(sent) == ["a", "b"] and len(sent) == 2
    assert sent.holds_only(base)


def test_what_is_sent_later_wins_and_a_forgotten_name_is_gone() -> None:
    base = {"a": res("a"), "b": res("b")}
    sent = SentNames()
    sent.rebase(base, frozenset(base))
    newer = res("a", "2")
    sent.add([newer])
    sent.forget("b")
    assert sent.get("a") is newer and sent.get("b") is None and sorted(sent) == ["a"]
    assert not sent.holds_only(base)
    sent.add([base["b"]])  # sent again
    assert sent.get("b") is base["b"]


def test_a_narrower_subscription_drops_the_others() -> None:
    base = {"a": res("a"), "b": res("b")}
    sent = SentNames()
    sent.rebase(base, frozenset(base))
    sent.add([res("z")])
    sent.keep_only(frozenset({"a"}))
    assert sorted(sent) == ["a"]
    sent.keep_only(frozenset({"a", "b", "z"}))  # subscribed again: not sent again yet
    assert sorted(sent) == ["a"]


def test_a_rebase_keeps_what_the_new_mapping_lacks() -> None:
    sent = SentNames()
    gone = res("gone")
    sent.add([gone, res("a")])
    newer = {"a": res("a", "2")}
    sent.rebase(newer, frozenset({"a", "gone"}))
    assert sent.get("a") is newer["a"] and sent.get("gone") is gone
