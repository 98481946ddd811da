"""Envoy's own verdict on translated config: `envoy --mode validate` over a static bootstrap.

Validate mode has no xDS, so the config one proxy would receive is inlined: every EDS
cluster becomes STATIC with its translated ClusterLoadAssignment as `load_assignment`, and
every HCM's `rds` is replaced by the translated RouteConfiguration as `route_config`.
The bootstrap also has what the agent's bootstrap gives every proxy and translated config
relies on: a node, and the static `sds-grpc` cluster that mesh mTLS secrets come from.
This catches protobuf shapes that parse but that Envoy rejects (duplicate domains, bad
addresses, unknown filters) before an e2e test or a user sees a NACK.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from envoy.config.bootstrap.v3 import bootstrap_pb2
from envoy.config.cluster.v3 import cluster_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2 as hpo_pb2
from translate_kit import (
    REVIEWS_SERVICE,
    clusters,
    gateway,
    listeners,
    load_assignments,
    routes,
    sidecar,
    snapshot,
)

import authzkit
from plait.local.plan import make_plan
from plait.model.identity import SDS_CLUSTER
from plait.model.proxy import Proxy
from plait.model.registry import PortMap, WorkloadInstance
from plait.model.snapshot import MeshSnapshot, build_snapshot
from plait.sources.directory import DirectorySource
from plait.translate.appprotocol import HTTP_OPTIONS
from plait.translate.proxy import Translator
from plait.translate.resource import ProxyConfig

SHOP = Path(__file__).resolve().parents[3] / "examples" / "shop"


def sds_cluster() -> cluster_pb2.Cluster:
    """The agent's SDS server on a Unix socket (never dialled in validate mode)."""
    cluster = cluster_pb2.Cluster(name=SDS_CLUSTER, type=cluster_pb2.Cluster.STATIC)
    endpoint = cluster.load_assignment.endpoints.add().lb_endpoints.add().endpoint
    endpoint.address.pipe.path = "/tmp/plait-validate-sds.sock"
    cluster.load_assignment.cluster_name = SDS_CLUSTER
    options = hpo_pb2.HttpProtocolOptions()
    options.explicit_http_config.http2_protocol_options.SetInParent()
    cluster.typed_extension_protocol_options[HTTP_OPTIONS].Pack(options)
    return cluster


def static_bootstrap(config: ProxyConfig) -> bootstrap_pb2.Bootstrap:
    """Everything `config` holds, inlined into static_resources."""
    eds = load_assignments(config)
    rds = routes(config)
    out = bootstrap_pb2.Bootstrap()
    out.node.id = "sidecar~validate.default"
    out.node.cluster = "validate"
    out.static_resources.clusters.append(sds_cluster())
    for cluster in clusters(config).values():
        if cluster.type == cluster_pb2.Cluster.EDS:
            cla = eds.pop(cluster.eds_cluster_config.service_name or cluster.name)
            cluster.ClearField("eds_cluster_config")
            cluster.type = cluster_pb2.Cluster.STATIC
            cluster.load_assignment.CopyFrom(cla)
        out.static_resources.clusters.append(cluster)
    assert not eds, f"load assignments without a cluster: {sorted(eds)}"
    named: set[str] = set()
    for listener in listeners(config).values():
        for chain in listener.filter_chains:
            for f in chain.filters:
                hcm = hcm_pb2.HttpConnectionManager()
                if not f.typed_config.Unpack(hcm):
                    continue
                if hcm.HasField("rds"):
                    named.add(hcm.rds.route_config_name)
                    hcm.route_config.CopyFrom(rds[hcm.rds.route_config_name])
                f.typed_config.Pack(hcm)
        out.static_resources.listeners.append(listener)
    unused = sorted(set(rds) - named)
    assert not unused, f"route tables no listener names: {unused}"
    return out


def envoy_validate(tmp_path: Path, config: ProxyConfig) -> subprocess.CompletedProcess[str]:
    return authzkit.envoy_validate(
        authzkit.write_bootstrap(tmp_path / "bootstrap.json", static_bootstrap(config))
    )


def assert_envoy_accepts(tmp_path: Path, config: ProxyConfig) -> None:
    result = envoy_validate(tmp_path, config)
    assert result.returncode == 0, f"Envoy rejected the config:\n{result.stdout}{result.stderr}"


def shop_snapshot() -> MeshSnapshot:
    """The shop as `plait up` would see it: every Deployment replica registered."""
    view = DirectorySource(SHOP).load()
    assert not [m for m in view.messages if m.severity == "error"], view.messages
    plan = make_plan(view.resources, build_snapshot(view.resources, (), 0))
    instances = [
        WorkloadInstance(
            name=r.instance,
            workload=r.workload,
            namespace=r.namespace,
            labels=r.labels,
            service_account=r.service_account,
            address="127.0.0.1",
            ports=PortMap.all_to(20000 + i),
        )
        for i, r in enumerate(plan.replicas)
    ]
    return build_snapshot(view.resources, instances, 1, view.messages)


@pytest.mark.parametrize(
    "proxy",
    [sidecar("frontend-0"), sidecar("reviews-v2-0"), gateway((80, 8080))],
    ids=["sidecar-frontend", "sidecar-reviews", "gateway"],
)
def test_envoy_accepts_the_shop_config(tmp_path: Path, proxy: Proxy) -> None:
    config = Translator(shop_snapshot()).config_for(proxy)
    assert config.resources("type.googleapis.com/envoy.config.listener.v3.Listener")
    assert_envoy_accepts(tmp_path, config)


RICH = (
    REVIEWS_SERVICE
    + """apiVersion: v1
kind: Service
metadata: {name: multi, namespace: team}
spec:
  selector: {app: multi}
  ports:
  - {name: http, port: 80}
  - {name: grpc-api, port: 9000}
  - {name: http2-x, port: 81}
  - {name: tcp-db, port: 5432}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: external}
spec:
  hosts: [api.example.com]
  resolution: DNS
  ports: [{number: 80, name: http, protocol: HTTP}, {number: 443, name: https, protocol: HTTPS}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: cdn}
spec:
  hosts: [cdn.example.com]
  resolution: DNS_ROUND_ROBIN
  ports: [{number: 80, name: http, protocol: HTTP}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: internal}
spec:
  hosts: [db.internal, "unix.internal"]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}]
  endpoints: [{address: 10.0.0.1, weight: 2}, {address: "unix:///run/db.sock"}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: public, namespace: team}
spec:
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*.example.com", "shop.local"]
  - port: {number: 9000, name: grpc, protocol: GRPC}
    hosts: ["team/api.example.com"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: multi, namespace: team}
spec:
  hosts: [multi, api.example.com, shop.local]
  gateways: [public, mesh]
  http:
  - match:
    - uri: {regex: "/items/[0-9]+"}
      headers: {x-canary: {exact: "true"}, cookie: {regex: ".*user=.*"}}
      method: {exact: GET}
    - uri: {exact: /health}
    route: [{destination: {host: multi.team.svc.cluster.local, port: {number: 9000}}}]
    timeout: 2s
    retries: {attempts: 3, perTryTimeout: 500ms, retryOn: "5xx,gateway-error,503,429"}
  - route:
    - {destination: {host: reviews.default, subset: v1}, weight: 90}
    - {destination: {host: reviews.default, subset: v2}, weight: 10}
    retries: {attempts: 0}
  - route: [{destination: {host: nowhere}}]
"""
)


@pytest.mark.parametrize(
    "proxy",
    [
        sidecar("frontend-0"),
        sidecar("multi-0", namespace="team"),
        gateway((80, 8080), (9000, 9001)),
    ],
    ids=["sidecar-default", "sidecar-team", "gateway"],
)
def test_envoy_accepts_a_config_using_every_applied_feature(tmp_path: Path, proxy: Proxy) -> None:
    assert_envoy_accepts(tmp_path, Translator(snapshot(RICH)).config_for(proxy))


def test_the_harness_reports_what_envoy_rejects(tmp_path: Path) -> None:
    """The check is not vacuous: a duplicate domain makes Envoy fail with its reason."""
    config = Translator(snapshot(RICH)).config_for(sidecar("frontend-0"))
    bootstrap = static_bootstrap(config)
    listener = next(
        lis for lis in bootstrap.static_resources.listeners if lis.name == "virtualOutbound"
    )
    f = listener.filter_chains[0].filters[0]
    hcm = hcm_pb2.HttpConnectionManager()
    assert f.typed_config.Unpack(hcm)
    hcm.route_config.virtual_hosts[1].domains.append(hcm.route_config.virtual_hosts[0].domains[0])
    f.typed_config.Pack(hcm)
    result = authzkit.envoy_validate(authzkit.write_bootstrap(tmp_path / "bad.json", bootstrap))
    assert result.returncode != 0
    assert "Only unique values for domains are permitted" in result.stdout + result.stderr
