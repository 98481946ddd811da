"""The xDS subscription state machine shared by ADS and SDS (sans-I/O)."""

from __future__ import annotations

from datetime import UTC, datetime

from plait.xdsproto.subscription import Request, RequestKind, Subscription

NOW = datetime(2026, 1, 1, tzinfo=UTC)
T = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"


def test_first_request_subscribes() -> None:
    sub = Subscription()

    assert sub.on_request(Request(T, resource_names=("a",)), NOW) is RequestKind.SUBSCRIBE
    assert sub.resubscribed and sub.subscribed == {"a"}


def test_ack_and_nack_need_the_latest_nonce() -> None:
    sub = Subscription()
    sub.on_request(Request(T, resource_names=("a",)), NOW)
    sub.record_sent("v1", "1")

    assert sub.on_request(Request(T, "v1", "1", ("a",)), NOW) is RequestKind.ACK
    assert sub.acked_version == "v1" and not sub.resubscribed
    sub.record_sent("v2", "2")
    assert sub.on_request(Request(T, "v1", "2", ("a",), error="bad"), NOW) is RequestKind.NACK
    assert sub.nack is not None and sub.nack.version == "v2"
    assert sub.nacked_versions == {"v2"}
    assert sub.on_request(Request(T, "v1", "2", ("a",)), NOW) is RequestKind.SUBSCRIBE


def test_a_stale_nonce_still_changes_the_subscription() -> None:
    sub = Subscription()
    sub.on_request(Request(T, resource_names=("a",)), NOW)
    sub.record_sent("v1", "1")
    sub.record_sent("v2", "2")

    kind = sub.on_request(Request(T, "", "1", ("a", "b")), NOW)

    assert kind is RequestKind.STALE
    assert sub.resubscribed and sub.subscribed == {"a", "b"}
    assert not sub.answered  # "2" still awaits its ACK


def test_a_stale_nonce_with_the_same_names_changes_nothing() -> None:
    sub = Subscription()
    sub.on_request(Request(T, resource_names=("a",)), NOW)
    sub.record_sent("v1", "1")
    sub.record_sent("v2", "2")

    assert sub.on_request(Request(T, "", "1", ("a",)), NOW) is RequestKind.STALE
    assert not sub.resubscribed


def test_wildcard_ignores_names() -> None:
    sub = Subscription(wildcard=True)
    sub.on_request(Request(T), NOW)
    sub.record_sent("v1", "1")

    sub.on_request(Request(T, "v1", "1", ("x",)), NOW)

    assert sub.subscribed == frozenset() and not sub.resubscribed


def test_subscriptions_listing_the_same_names_share_one_set() -> None:
    a, b = Subscription(), Subscription()
    names = ("outbound|80||a", "outbound|80||b")
    now = datetime(2025, 1, 1, tzinfo=UTC)
    a.on_request(Request("eds", resource_names=names), now)
    b.on_request(Request("eds", resource_names=tuple(list(names))), now)
    assert a.subscribed == frozenset(names)
    assert a.subscribed is b.subscribed
