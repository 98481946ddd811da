"""The delta (incremental) xDS subscription state machine (sans-I/O)."""

from __future__ import annotations

from datetime import UTC, datetime

from plait.xdsproto.delta import DeltaRequest, DeltaSubscription, Held
from plait.xdsproto.subscription import RequestKind

NOW = datetime(2026, 1, 1, tzinfo=UTC)
T = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"


def sub_to(*names: str, wildcard: bool = False) -> DeltaSubscription:
    sub = DeltaSubscription(wildcard=wildcard)
    sub.on_delta(DeltaRequest(T, subscribe=names), NOW)
    return sub


def test_subscribe_and_unsubscribe_change_the_names_by_difference() -> None:
    sub = sub_to("a", "b")
    assert sub.subscribed == {"a", "b"} and sub.resubscribed

    kind = sub.on_delta(DeltaRequest(T, subscribe=("c",), unsubscribe=("a", "never")), NOW)

    assert kind is RequestKind.SUBSCRIBE
    assert sub.subscribed == {"b", "c"} and sub.resubscribed
    assert sub.wants("c") and not sub.wants("a")
    sub.on_delta(DeltaRequest(T), NOW)  # neither: a pure request changes nothing
    assert sub.subscribed == {"b", "c"} and not sub.resubscribed


def test_unsubscribing_forgets_what_the_client_held() -> None:
    sub = sub_to("a", "b")
    sub.record_delta("v1", "1", {"a": "ha", "b": "hb"}, frozenset())

    sub.on_delta(DeltaRequest(T, "1", unsubscribe=("a",)), NOW)

    assert sub.client == {"b": "hb"}


def test_a_subscribed_name_is_sent_again_even_if_the_client_seems_to_hold_it() -> None:
    sub = sub_to("a")
    sub.record_delta("v1", "1", {"a": "ha"}, frozenset())
    sub.touched.clear()

    sub.on_delta(DeltaRequest(T, "1", subscribe=("a",)), NOW)

    assert "a" not in sub.client and "a" in sub.resend and "a" in sub.touched


def test_a_stale_nonce_still_changes_the_subscription() -> None:
    sub = sub_to("a")
    sub.record_delta("v1", "1", {"a": "ha"}, frozenset())
    sub.on_delta(DeltaRequest(T, "1"), NOW)  # ACK: nonce 1 is answered

    kind = sub.on_delta(DeltaRequest(T, "1", subscribe=("b",), unsubscribe=("a",)), NOW)

    assert kind is RequestKind.STALE
    assert sub.subscribed == {"b"} and sub.resubscribed and sub.client == {}


def test_each_response_in_flight_is_acked_by_its_own_nonce() -> None:
    sub = sub_to("a", "b")
    sub.record_delta("v1", "1", {"a": "ha"}, frozenset())
    sub.record_delta("v2", "2", {"b": "hb"}, frozenset())

    assert sub.on_delta(DeltaRequest(T, "1"), NOW) is RequestKind.ACK
    assert sub.acked_version == "v1" and not sub.answered
    assert sub.on_delta(DeltaRequest(T, "2"), NOW) is RequestKind.ACK
    assert sub.acked_version == "v2" and sub.answered
    assert sub.on_delta(DeltaRequest(T, "2"), NOW) is RequestKind.STALE  # already answered
    assert sub.on_delta(DeltaRequest(T, "9"), NOW) is RequestKind.STALE  # never sent


def test_a_nack_rejects_the_resources_it_names_and_keeps_the_others() -> None:
    sub = sub_to("good", "bad")
    sub.record_delta("v1", "1", {"good": "g1", "bad": "b1"}, frozenset())
    sub.on_delta(DeltaRequest(T, "1"), NOW)
    sub.record_delta("v2", "2", {"good": "g2", "bad": "b2"}, frozenset())

    error = "Error adding/updating cluster(s) bad: no"
    assert sub.on_delta(DeltaRequest(T, "2", error=error), NOW) is RequestKind.NACK

    assert set(sub.rejected) == {"bad"} and sub.rejected["bad"].version == "b2"
    assert sub.client == {"good": "g2", "bad": "b1"}  # bad: what the client kept
    assert sub.nack is not None and sub.nack.message == error and sub.nack.version == "v2"
    assert sub.acked_version == "v1"


def test_a_nack_naming_no_resource_rejects_the_whole_response() -> None:
    sub = sub_to("a", "b")
    sub.record_delta("v1", "1", {"a": "a1", "b": "b1"}, frozenset())

    sub.on_delta(DeltaRequest(T, "1", error="Invalid duration"), NOW)

    assert set(sub.rejected) == {"a", "b"} and sub.client == {}


def test_a_rejection_ends_when_a_newer_version_is_acked_or_the_name_goes() -> None:
    sub = sub_to("x", "y")
    sub.record_delta("v1", "1", {"x": "x1", "y": "y1"}, frozenset())
    sub.on_delta(DeltaRequest(T, "1", error="x and y are wrong"), NOW)
    assert set(sub.rejected) == {"x", "y"}

    sub.record_delta("v2", "2", {"x": "x2"}, frozenset())
    sub.on_delta(DeltaRequest(T, "2"), NOW)
    assert set(sub.rejected) == {"y"} and sub.nack is not None  # y still stands refused

    sub.on_delta(DeltaRequest(T, unsubscribe=("y",)), NOW)
    assert sub.rejected == {} and sub.nack is None


def test_a_removal_ends_a_rejection() -> None:
    sub = sub_to("x", wildcard=True)
    sub.record_delta("v1", "1", {"x": "x1"}, frozenset())
    sub.on_delta(DeltaRequest(T, "1", error="x is wrong"), NOW)

    sub.record_delta("v2", "2", {}, frozenset({"x"}))

    assert sub.rejected == {} and sub.nack is None


def test_initial_resource_versions_say_what_the_client_holds_after_a_reconnect() -> None:
    sub = DeltaSubscription()
    req = DeltaRequest(T, subscribe=("a", "b"), initial_versions={"a": "a1"})

    assert sub.on_delta(req, NOW) is RequestKind.SUBSCRIBE

    assert sub.client == {"a": "a1"}  # b is not held: it is owed
    assert sub.resend == {"b"} and sub.touched == set()  # a new stream: all get a look


def test_a_wildcard_stream_stays_wildcard_when_envoy_lists_names_on_reconnect() -> None:
    sub = DeltaSubscription(wildcard=True)
    req = DeltaRequest(T, subscribe=("*", "c1"), initial_versions={"c1": "v", "c2": "w"})

    sub.on_delta(req, NOW)

    assert sub.wildcard and sub.wants("anything") and sub.owes_reply
    assert sub.client == {"c1": "v", "c2": "w"}
    sub.record_delta("s1", "1", {}, frozenset())
    assert not sub.owes_reply


def test_a_star_makes_a_named_type_wildcard() -> None:
    sub = sub_to("*")
    assert sub.wildcard and sub.wants("x") and "*" not in sub.subscribed


def test_a_forgotten_name_is_resent_even_if_initial_versions_follow() -> None:
    sub = DeltaSubscription()
    sub.forget("c")  # e.g. its cluster changed: the endpoints must go again
    sub.on_delta(DeltaRequest(T, subscribe=("c",), initial_versions={"c": "c1"}), NOW)

    assert sub.client == {"c": "c1"} and "c" in sub.resend
    sub.record_delta("v1", "1", {"c": "c1"}, frozenset())
    assert sub.resend == set()


def test_a_nack_names_a_resource_only_as_a_word_of_its_own() -> None:
    sub = sub_to("outbound|80||x", "outbound|8080||x")
    sub.record_delta("v1", "1", {"outbound|80||x": "1", "outbound|8080||x": "2"}, frozenset())

    error = "Error adding/updating cluster(s) outbound|8080||x: bad, other: worse"
    sub.on_delta(DeltaRequest(T, "1", error=error), NOW)

    assert set(sub.rejected) == {"outbound|8080||x"}


class R:
    def __init__(self, digest: str) -> None:
        self.digest = digest


def test_held_reads_a_shared_mapping_under_its_own_differences() -> None:
    wanted = {"a", "b", "c"}
    held = Held(lambda name: name in wanted)
    shared = {"a": R("a1"), "b": R("b1"), "x": R("x1")}
    held["c"] = "c0"
    held.rebase(shared, keep=["c"])

    assert held == {"a": "a1", "b": "b1", "c": "c0"}  # x is not wanted: not held
    held["a"] = "a2"
    held.discard("b")
    held.discard("c")
    assert held == {"a": "a2"} and "b" not in held and held.get("b") is None
    wanted.discard("a")
    assert held == {"a": "a2"}  # its own differences stand until discarded
    held.rebase(shared)
    assert held == {"b": "b1"} and bool(held) and not Held(lambda name: True)


def test_a_stream_in_step_keeps_no_copy_of_the_names() -> None:
    sub = sub_to("a", "b")
    shared = {"a": R("a1"), "b": R("b1")}
    sub.record_delta("v1", "1", {"a": "a1", "b": "b1"}, frozenset())
    sub.client.rebase(shared)

    assert sub.client.own_names() == [] and sub.client == {"a": "a1", "b": "b1"}


def test_streams_announcing_the_same_versions_share_one_mapping() -> None:
    said = {f"c{i}": f"v{i}" for i in range(100)}
    first, second = (DeltaSubscription(wildcard=True) for _ in range(2))
    for sub in (first, second):
        sub.on_delta(DeltaRequest(T, initial_versions=dict(said)), NOW)
    assert first.client == said and second.client == said
    assert first.client._said is second.client._said  # one copy for both streams
    assert first.client._own == {} and not first.touched

    first.client.discard("c1")  # one stream's change stays its own
    first.client["c2"] = "v2-new"
    assert "c1" not in first.client and first.client["c2"] == "v2-new"
    assert second.client == said


def test_announced_versions_of_unsubscribed_names_are_not_held() -> None:
    sub = DeltaSubscription()
    sub.on_delta(DeltaRequest(T, subscribe=("a",), initial_versions={"a": "ha", "b": "hb"}), NOW)
    assert sub.client == {"a": "ha"}
    assert "b" not in sub.client and sub.client.get("b") is None
    sub.on_delta(DeltaRequest(T, subscribe=("b",)), NOW)  # no version now: send it
    assert "b" not in sub.client and "b" in sub.resend


def test_a_push_replaces_the_announcement_by_the_config() -> None:
    sub = DeltaSubscription(wildcard=True)
    sub.on_delta(DeltaRequest(T, initial_versions={"a": "ha", "gone": "hg"}), NOW)

    class R:
        def __init__(self, digest: str) -> None:
            self.digest = digest

    sub.client.rebase({"a": R("ha")})
    assert sub.client == {"a": "ha"} and sub.client.said("gone") is None


def test_delta_subscriptions_to_the_same_many_names_share_one_set() -> None:
    names = tuple(f"c{i}" for i in range(100))
    first, second = sub_to(*names), sub_to(*reversed(names))
    assert first.subscribed is second.subscribed
    first.on_delta(DeltaRequest(T, unsubscribe=("c1",)), NOW)
    assert "c1" not in first.subscribed and "c1" in second.subscribed


def test_nearly_equal_announcements_share_a_mapping_and_keep_their_differences() -> None:
    common = {f"c{i}": f"v{i}" for i in range(100)}
    a = {**common, "inbound-a": "va"}  # every proxy's own inbound cluster differs
    b = {**{k: v for k, v in common.items() if k != "c5"}, "c6": "v6-new", "inbound-b": "vb"}
    first, second = (DeltaSubscription(wildcard=True) for _ in range(2))
    first.on_delta(DeltaRequest(T, initial_versions=a), NOW)
    second.on_delta(DeltaRequest(T, initial_versions=b), NOW)
    assert first.client == a and second.client == b
    assert first.client._said is second.client._said
    assert len(second.client._own) <= 4  # its differences only (c5, c6, the inbounds)
    assert "c5" not in second.client and second.client.said("c5") is None
    assert second.client.said("inbound-a") is None and second.client.said("c6") == "v6-new"
    far = DeltaSubscription(wildcard=True)
    far.on_delta(DeltaRequest(T, initial_versions={f"x{i}": "v" for i in range(100)}), NOW)
    assert far.client._said is not first.client._said and far.client._own == {}
