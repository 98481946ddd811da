"""The lab itself: traffic from the client's sidecar reaches every echo replica, and an
applied VirtualService is in force for the very next request."""

from __future__ import annotations

from labkit import Lab, replicas_of, statuses

ECHO = "http://echo:8080"


async def test_default_route_spreads_over_every_echo_replica(lab: Lab) -> None:
    replies = await lab.send(f"{ECHO}/hello", 60)
    assert statuses(replies) == {200: 60}
    assert set(replicas_of(replies)) == {"echo-v1-0", "echo-v1-1", "echo-v2-0"}
    assert all(r.body["path"] == "/hello" for r in replies)


async def test_applied_config_is_in_force_for_the_next_request(lab: Lab) -> None:
    vs = """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo}
spec:
  hosts: [echo]
  http: [{route: [{destination: {host: echo, subset: v2}}]}]
"""
    with lab.config("echo-vs", vs):
        assert set(replicas_of(await lab.send(f"{ECHO}/", 20))) == {"echo-v2-0"}
    assert len(set(replicas_of(await lab.send(f"{ECHO}/", 40)))) == 3
