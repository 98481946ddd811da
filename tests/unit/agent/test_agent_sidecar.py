"""SidecarOptions: the identity must be the proxy's, and the bootstrap asks for SDS and mTLS."""

from __future__ import annotations

from pathlib import Path

import pytest

from plait.agent.identity import CaClientOptions
from plait.agent.sidecar import SidecarOptions
from plait.model.identity import SpiffeId, control_plane_identity
from plait.model.proxy import Proxy, ProxyKind, node_id

PROXY = Proxy(
    id=node_id(ProxyKind.SIDECAR, "web-0", "shop"),
    kind=ProxyKind.SIDECAR,
    workload="web",
    namespace="shop",
    service_account="web",
)


def options(identity: SpiffeId, xds_tls: bool = True) -> SidecarOptions:
    ca = CaClientOptions("https://127.0.0.1:9", Path("/r.pem"), Path("/t.jwt"), identity)
    return SidecarOptions(
        proxy=PROXY,
        run_dir=Path("/run"),
        ca=ca,
        sds_socket=Path("/tmp/x/sds.sock"),
        xds_host="127.0.0.1",
        xds_port=15010,
        xds_tls=xds_tls,
    )


def test_the_bootstrap_uses_the_agents_socket_and_checks_the_control_plane() -> None:
    boot = options(SpiffeId("example.org", "shop", "web")).bootstrap()

    assert boot.sds_socket == "/tmp/x/sds.sock"
    assert boot.xds_identity == control_plane_identity("example.org")
    assert (
        options(SpiffeId("example.org", "shop", "web"), xds_tls=False).bootstrap().xds_identity
        is None
    )


def test_a_certificate_for_someone_else_is_refused_up_front() -> None:
    with pytest.raises(ValueError, match="shop/web"):
        options(SpiffeId("cluster.local", "shop", "payments"))
