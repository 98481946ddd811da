"""The outbound listener names its workload on every request (early header mutation)."""

from __future__ import annotations

import pytest
from envoy.config.core.v3 import base_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.http.early_header_mutation.header_mutation.v3 import header_mutation_pb2

from plait.model.proxy import Proxy, ProxyKind
from plait.translate import accesslog, listeners, peer


def proxy(workload: str = "client") -> Proxy:
    return Proxy(id="sidecar~client-0.default", kind=ProxyKind.SIDECAR, workload=workload)


def outbound_hcm(source_workload: str | None) -> hcm_pb2.HttpConnectionManager:
    lis = listeners.outbound_listener("127.0.0.1", 15001, None, source_workload)
    hcm = hcm_pb2.HttpConnectionManager()
    assert lis.filter_chains[0].filters[0].typed_config.Unpack(hcm)
    return hcm


def test_the_outbound_hcm_overwrites_the_source_workload_header() -> None:
    hcm = outbound_hcm(peer.source_workload(proxy()))
    (ext,) = hcm.early_header_mutation_extensions
    assert ext.name == peer.EARLY_HEADER_MUTATION
    mutation = header_mutation_pb2.HeaderMutation()
    assert ext.typed_config.Unpack(mutation)
    (option,) = [m.append for m in mutation.mutations]
    assert (option.header.key, option.header.value) == ("x-plait-source-workload", "default/client")
    assert option.append_action == base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD


def test_without_a_workload_nothing_is_stamped() -> None:
    assert not outbound_hcm(None).early_header_mutation_extensions


def test_a_workload_that_looks_like_a_command_operator_is_refused() -> None:
    with pytest.raises(ValueError, match="command operator"):
        peer.source_workload(proxy("a%b"))


def test_the_access_log_records_the_header() -> None:
    assert accesslog.FIELDS["source_workload"] == "%REQ(X-PLAIT-SOURCE-WORKLOAD)%"
