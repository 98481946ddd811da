"""`plait discovery` against the real cluster, with a real Envoy connected to it.

A Service (targetPort by name) and a Deployment applied with kubectl, run by the test node
agent, plus a VirtualService give the connected Envoy the right cluster, route and
endpoints, and real requests through its outbound listener reach the pods. A kubectl edit
of the VirtualService is ACKed within 1 s; scaling the Deployment changes Envoy's
endpoints within 1 s of the EndpointSlice; an invalid VirtualService is reported in
`/status` and never pushed (the last good one stays)."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from lightkube import Client, KubeConfig
from lightkube.generic_resource import create_namespaced_resource
from lightkube.resources.discovery_v1 import EndpointSlice
from lightkube.types import PatchType

import kubeenvoy
from kubecluster import Cluster, free_port
from kubediscovery import Discovery
from kubenode import NodeAgent, running_node

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="pods are network namespaces: root only")

NS = f"shop-{uuid.uuid4().hex[:6]}"  # the session's cluster is shared with other modules
HOST = f"web.{NS}.svc.cluster.local"
CLUSTER = f"outbound|80||{HOST}"
T = TypeVar("T")
VIRTUALSERVICE = create_namespaced_resource(
    "networking.istio.io", "v1", "VirtualService", "virtualservices"
)


def wait_for(what: str, get: Callable[[], T | None], timeout: float = 60.0, step: float = 0.1) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = None
        with contextlib.suppress(OSError):  # e.g. Envoy's admin port not open yet
            value = get()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(step)


def deployment(replicas: int) -> str:
    return json.dumps(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": NS},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {
                        "terminationGracePeriodSeconds": 1,
                        "containers": [
                            {
                                "name": "web",
                                "image": "docker.io/library/python:3.12-slim",
                                "args": ["-m", "http.server", "8080", "--bind", "0.0.0.0"],
                                "ports": [{"name": "http-web", "containerPort": 8080}],
                                "readinessProbe": {"tcpSocket": {"port": "http-web"}},
                            }
                        ],
                    },
                },
            },
        }
    )


SERVICE = json.dumps(
    {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": NS},
        "spec": {
            "selector": {"app": "web"},
            "ports": [{"name": "http", "port": 80, "targetPort": "http-web"}],
        },
    }
)


def virtual_service(tag: str, regex: str | None = None) -> str:
    match = [{"uri": {"regex": regex}}] if regex else [{"uri": {"prefix": "/"}}]
    return json.dumps(
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "VirtualService",
            "metadata": {"name": "web", "namespace": NS},
            "spec": {
                "hosts": ["web"],
                "http": [
                    {
                        "match": match,
                        "headers": {"response": {"set": {"x-route": tag}}},
                        "route": [{"destination": {"host": "web"}}],
                    }
                ],
            },
        }
    )


class Envoy(kubeenvoy.Envoy):
    """The kit's Envoy as a sidecar of this module's namespace calling `web`."""

    def __init__(
        self,
        workdir: Path,
        xds_port: int,
        pod: str = "client-0",
        labels: dict[str, str] | None = None,
        ca_dir: Path | None = None,
    ) -> None:
        super().__init__(workdir, xds_port, pod, labels, ca_dir, namespace=NS, host=HOST)


@pytest.fixture(scope="module")
def node(kube: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeAgent]:
    with running_node(kube.kubeconfig, tmp_path_factory.mktemp("node")) as agent:
        yield agent


@pytest.fixture(scope="module")
def mesh(
    kube: Cluster, node: NodeAgent, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Discovery, Envoy]]:
    kube.apply_crds()
    kube.kubectl("create", "namespace", NS)
    wait_for("the ServiceAccount", lambda: kube.kubectl("get", "sa", "-n", NS, "-o", "name"))
    kube.kubectl("apply", "-f", "-", input=SERVICE)
    kube.kubectl("apply", "-f", "-", input=deployment(2))
    kube.kubectl("apply", "-f", "-", input=virtual_service("one"))
    workdir = tmp_path_factory.mktemp("discovery")
    discovery = Discovery(kube, workdir)
    envoy: Envoy | None = None
    try:
        wait_for("plait discovery's status", discovery.try_status)
        envoy = Envoy(workdir, discovery.xds_port)
        yield discovery, envoy
        discovery = MESH_DISCOVERY.get("current", discovery)  # a test may have replaced it
    except BaseException:
        print(discovery.log.read_text()[-4000:])
        if envoy is not None:
            print(envoy.diagnostics())
        raise
    finally:
        if envoy is not None:
            envoy.stop()
        discovery.stop()
        kube.kubectl("delete", "namespace", NS, "--wait=false", check=False)


MESH_DISCOVERY: dict[str, Discovery] = {}


def synced(discovery: Discovery, generation: int) -> bool:
    proxies = discovery.status()["proxies"]
    return bool(proxies) and all(
        p["connected"] and (p["generation"] or 0) >= generation and p["nack"] is None
        for p in proxies
    )


def pod_ips(kube: Cluster) -> set[str]:
    pods = json.loads(kube.kubectl("get", "pods", "-n", NS, "-l", "app=web", "-o", "json"))
    return {
        p["status"]["podIP"]
        for p in pods["items"]
        if p.get("status", {}).get("podIP") and not p["metadata"].get("deletionTimestamp")
    }


def test_kubectl_resources_reach_a_connected_envoy(
    kube: Cluster, mesh: tuple[Discovery, Envoy]
) -> None:
    discovery, envoy = mesh
    try:
        ips = wait_for(
            "two running pods", lambda: (lambda s: s if len(s) == 2 else None)(pod_ips(kube))
        )
        want = {f"{ip}:8080" for ip in ips}  # targetPort by name: the container port http-web
        wait_for("Envoy's endpoints", lambda: envoy.endpoints() == want, 30)
        assert wait_for(
            "a routed answer", lambda: (lambda r: r if r[0] == 200 else None)(envoy.get()), 30
        ) == (200, "one")
        wait_for("no source errors", lambda: discovery.status()["sourceErrors"] == {}, 30)
        status = discovery.status()
        assert [p["workload"] for p in status["proxies"]] == ["client"]
    except BaseException:
        print(discovery.log.read_text()[-4000:], envoy.diagnostics())
        raise


def test_a_kubectl_edit_is_acked_within_a_second(
    kube: Cluster, mesh: tuple[Discovery, Envoy]
) -> None:
    discovery, envoy = mesh
    wait_for(
        "the proxy in sync",
        lambda: synced(discovery, discovery.status()["controlPlane"]["generation"]),
        30,
    )

    def acked_after(edit: Callable[[], object]) -> tuple[float, float]:
        """(seconds the edit call took, seconds from its return to every proxy's ACK)."""
        before = discovery.status()["controlPlane"]["generation"]
        began = time.monotonic()
        edit()
        stored = time.monotonic()  # the API server has the edit when the call returns
        wait_for(
            "a new generation",
            lambda: discovery.status()["controlPlane"]["generation"] > before,
            5,
            0.01,
        )
        generation = discovery.status()["controlPlane"]["generation"]
        wait_for("the ACK", lambda: synced(discovery, generation), 5, 0.01)
        return stored - began, time.monotonic() - stored

    call, acked = acked_after(
        lambda: kube.kubectl("apply", "-f", "-", input=virtual_service("two"))
    )
    print(f"kubectl apply ({call * 1000:.0f} ms) returned → ACK: {acked * 1000:.0f} ms")
    assert acked < 1.0
    assert envoy.get() == (200, "two")

    # the same edit path without kubectl's start-up: from the API request's start
    api = Client(
        KubeConfig.from_file(str(kube.kubeconfig)), field_manager="kubectl-client-side-apply"
    )
    call, acked = acked_after(
        lambda: api.patch(
            VIRTUALSERVICE,
            "web",
            json.loads(virtual_service("two-b")),
            namespace=NS,
            patch_type=PatchType.MERGE,
        )
    )
    print(f"API request started → ACK: {(call + acked) * 1000:.0f} ms")
    assert call + acked < 1.0
    assert envoy.get() == (200, "two-b")
    kube.kubectl("apply", "-f", "-", input=virtual_service("two"))
    wait_for("the kubectl version back", lambda: envoy.get() == (200, "two"), 5, 0.01)


def test_scaling_changes_endpoints_within_a_second(
    kube: Cluster, mesh: tuple[Discovery, Envoy]
) -> None:
    _, envoy = mesh
    kube.kubectl("scale", "deployment", "web", "-n", NS, "--replicas=3")

    api = Client(KubeConfig.from_file(str(kube.kubeconfig)))

    def ready_in_slices() -> set[str] | None:
        slices = api.list(EndpointSlice, namespace=NS, labels={"kubernetes.io/service-name": "web"})
        ready = {
            f"{a}:8080"
            for s in slices for e in s.endpoints or []
            if e.conditions is not None and e.conditions.ready for a in e.addresses
        }  # fmt: skip
        return ready if len(ready) == 3 else None

    want = wait_for("three ready endpoints in the EndpointSlice", ready_in_slices, 60, 0.01)
    seen = time.monotonic()  # the slice is polled every 10 ms: at most that late
    wait_for("Envoy's three endpoints", lambda: envoy.endpoints() == want, 5, 0.01)
    elapsed = time.monotonic() - seen
    print(f"EndpointSlice seen ready → Envoy's endpoints: {elapsed * 1000:.0f} ms")
    assert elapsed < 1.0


def test_an_invalid_virtualservice_is_reported_and_never_pushed(
    kube: Cluster, mesh: tuple[Discovery, Envoy]
) -> None:
    discovery, envoy = mesh
    # valid for the CRD's schema, refused by plait: RE2 has no lookahead
    kube.kubectl("apply", "-f", "-", input=virtual_service("three", regex="/(?=x).*"))

    def error() -> list[dict[str, Any]]:
        return [e for e in discovery.status()["errors"] if f"VirtualService/{NS}/web" in e["file"]]

    [message] = wait_for("the VirtualService's error", error, 10)
    assert message["path"].startswith("spec.http[0].match[0].uri"), message
    generation = discovery.status()["controlPlane"]["generation"]  # with the error in it
    wait_for("the proxy in sync with it", lambda: synced(discovery, generation), 5)
    assert "three" not in envoy.admin("/config_dump")
    assert envoy.get() == (200, "two")
    assert all(p["nack"] is None for p in discovery.status()["proxies"])


def test_a_restarted_control_plane_resumes_from_a_fresh_list(
    kube: Cluster, mesh: tuple[Discovery, Envoy], tmp_path: Path
) -> None:
    discovery, envoy = mesh
    kube.kubectl("apply", "-f", "-", input=virtual_service("four"))
    wait_for("the valid edit", lambda: envoy.get() == (200, "four"), 10, 0.05)
    before = json.loads(envoy.admin("/config_dump"))
    discovery.stop()
    # the proxy keeps its config while no control plane runs
    assert envoy.get() == (200, "four")
    replacement = Discovery(kube, tmp_path, (discovery.xds_port, discovery.status_port))
    MESH_DISCOVERY["current"] = replacement
    wait_for("the replacement's status", replacement.try_status, 30)
    generation = replacement.status()["controlPlane"]["generation"]
    wait_for("the proxy resynced", lambda: synced(replacement, generation), 30)
    assert envoy.get() == (200, "four")
    after = json.loads(envoy.admin("/config_dump"))

    def versions(dump: dict[str, Any]) -> dict[str, str]:
        """Each dynamic cluster's and listener's version (content hashes)."""
        found: dict[str, str] = {}
        for c in dump["configs"]:
            for entry in c.get("dynamic_active_clusters", []):
                found[entry["cluster"]["name"]] = entry["version_info"]
            for entry in c.get("dynamic_listeners", []):
                found[entry["name"]] = entry["active_state"]["version_info"]
        return found

    assert versions(after) == versions(before)  # identical resources: nothing drained


def test_mtls_xds_admits_a_proxy_only_as_a_pod_that_runs_as_its_account(
    kube: Cluster, mesh: tuple[Discovery, Envoy], tmp_path: Path
) -> None:
    ca_dir = tmp_path / "ca"
    secure = Discovery(
        kube, tmp_path, extra=("--ca-dir", str(ca_dir), "--ca-port", str(free_port()))
    )
    envoys: list[Envoy] = []
    try:
        wait_for("the mTLS control plane", secure.try_status, 30)
        pods = json.loads(kube.kubectl("get", "pods", "-n", NS, "-l", "app=web", "-o", "json"))
        web = next(
            p["metadata"] for p in pods["items"] if not p["metadata"].get("deletionTimestamp")
        )
        labels = {"app": "web"}
        # the certificate proves spiffe://cluster.local/ns/NS/sa/default, the pods' account
        envoys.append(Envoy(tmp_path, secure.xds_port, web["name"], labels, ca_dir))
        envoys.append(Envoy(tmp_path, secure.xds_port, "web-0000000000-nopod", labels, ca_dir))

        def admitted() -> bool:
            proxies = secure.status()["proxies"]
            return any(
                p["name"].endswith(f"{web['name']}.{NS}") and p["connected"] for p in proxies
            )

        wait_for("the pod's proxy admitted", admitted, 30)

        def refused() -> list[dict[str, Any]]:
            return [r for r in secure.status()["refusedProxies"] if "nopod" in r["node"]]

        [refusal, *_] = wait_for("the other refused", refused, 30)
        assert f"no Pod {NS}/web-0000000000-nopod" in refusal["reason"]
        assert not any("nopod" in p["name"] for p in secure.status()["proxies"])
    except BaseException:
        print(secure.log.read_text()[-4000:], *(e.diagnostics() for e in envoys))
        raise
    finally:
        for e in envoys:
            e.stop()
        secure.stop()


HEADLESS = f"web-headless.{NS}.svc.cluster.local"


def web_endpoints(kube: Cluster) -> set[str]:
    """Every web pod not being deleted, at the container port of `http-web`."""
    return {f"{ip}:8080" for ip in pod_ips(kube)}


def test_a_headless_service_reaches_its_pods(
    kube: Cluster, mesh: tuple[Discovery, Envoy], tmp_path: Path
) -> None:
    """clusterIP None: the proxy's cluster for it is the pods' addresses (EDS) and a
    request by its name reaches them, as istiod does with EDS for headless Services."""
    discovery = MESH_DISCOVERY.get("current", mesh[0])
    service = json.loads(SERVICE)
    service["metadata"]["name"] = "web-headless"
    service["spec"]["clusterIP"] = "None"
    kube.kubectl("apply", "-f", "-", input=json.dumps(service))
    envoy = kubeenvoy.Envoy(tmp_path, discovery.xds_port, "headless-0", namespace=NS, host=HEADLESS)
    try:
        assert (
            kube.kubectl(
                "get", "service", "web-headless", "-n", NS, "-o", "jsonpath={.spec.clusterIP}"
            )
            == "None"
        )
        wait_for(
            "the pods as the headless service's endpoints",
            lambda: (lambda e: e and envoy.endpoints() == e)(web_endpoints(kube)),
            30,
        )
        dump = json.loads(envoy.admin("/config_dump"))
        [cluster] = [
            c["cluster"]
            for d in dump["configs"] for c in d.get("dynamic_active_clusters", [])
            if c["cluster"]["name"] == envoy.cluster
        ]  # fmt: skip
        assert cluster["type"] == "EDS", cluster
        routes = json.dumps([d for d in dump["configs"] if "dynamic_route_configs" in d])
        assert f'"{HEADLESS}"' in routes  # a virtual host answers to its name
        status, _ = wait_for(
            "a request through the headless service",
            lambda: (lambda r: r if r[0] == 200 else None)(envoy.get()),
            30,
        )
        assert status == 200
    except BaseException:
        print(discovery.log.read_text()[-4000:], envoy.diagnostics())
        raise
    finally:
        envoy.stop()
        kube.kubectl("delete", "service", "web-headless", "-n", NS, "--ignore-not-found")


def test_a_terminating_endpoint_leaves_the_eds_set(
    kube: Cluster, mesh: tuple[Discovery, Envoy]
) -> None:
    """A pod being deleted is kept by a finalizer, so its EndpointSlice endpoint stays,
    marked terminating (ready false), for as long as the test looks: Envoy's endpoints
    lose it while the slice still lists it."""
    discovery = MESH_DISCOVERY.get("current", mesh[0])
    _, envoy = mesh
    api = Client(KubeConfig.from_file(str(kube.kubeconfig)))
    want = wait_for(
        "every web pod in Envoy's endpoints",
        lambda: (lambda e: e if e and envoy.endpoints() == e else None)(web_endpoints(kube)),
        30,
    )
    pods = json.loads(kube.kubectl("get", "pods", "-n", NS, "-l", "app=web", "-o", "json"))
    victim = next(
        p for p in pods["items"]
        if f"{p['status'].get('podIP')}:8080" in want and not p["metadata"].get("deletionTimestamp")
    )  # fmt: skip
    name, address = victim["metadata"]["name"], victim["status"]["podIP"]
    hold = {"metadata": {"finalizers": ["test.plait.dev/hold"]}}
    kube.kubectl("patch", "pod", name, "-n", NS, "--type=merge", "-p", json.dumps(hold))

    def conditions() -> dict[str, Any] | None:
        slices = api.list(EndpointSlice, namespace=NS, labels={"kubernetes.io/service-name": "web"})
        for s in slices:
            for e in s.endpoints or []:
                if address in e.addresses and e.conditions is not None:
                    return {
                        "ready": e.conditions.ready,
                        "serving": e.conditions.serving,
                        "terminating": e.conditions.terminating,
                    }
        return None

    try:
        kube.kubectl("delete", "pod", name, "-n", NS, "--wait=false")
        marked = wait_for(
            "the endpoint marked terminating",
            lambda: (lambda c: c if c and c["terminating"] else None)(conditions()),
            30,
            0.01,
        )
        seen = time.monotonic()
        assert marked["ready"] is False, marked
        wait_for(
            "Envoy without the terminating endpoint",
            lambda: f"{address}:8080" not in envoy.endpoints(),
            5,
            0.01,
        )
        print(f"endpoint terminating {marked} → out of Envoy's EDS set: "
              f"{(time.monotonic() - seen) * 1000:.0f} ms")  # fmt: skip
        still = conditions()
        assert still is not None and still["terminating"], still  # dropped for terminating
        wait_for(  # the Deployment's replacement comes in; the held pod stays out
            "the replacement in Envoy's endpoints",
            lambda: (lambda e: e and envoy.endpoints() == e)(web_endpoints(kube)),
            60,
        )
        assert f"{address}:8080" not in envoy.endpoints()
    except BaseException:
        print(discovery.log.read_text()[-4000:], envoy.diagnostics())
        raise
    finally:
        kube.kubectl(
            "patch", "pod", name, "-n", NS, "--type=json",
            "-p", '[{"op": "remove", "path": "/metadata/finalizers"}]', check=False,
        )  # fmt: skip


def test_discovery_serves_xds_on_grpcs_io_manager(
    kube: Cluster, mesh: tuple[Discovery, Envoy], tmp_path: Path
) -> None:
    """`plait discovery` applies the control plane's gRPC settings before gRPC loads
    (`controlplane/grpctune.py`): gRPC's `tcp` trace shows its xDS port's connections
    accepted by the I/O manager's `tcp_server_posix.cc`, not by EventEngine."""
    env = {k: v for k, v in os.environ.items() if k != "GRPC_EXPERIMENTS"}
    env |= {"GRPC_VERBOSITY": "debug", "GRPC_TRACE": "tcp"}
    discovery = Discovery(kube, tmp_path, env=env)
    try:
        wait_for("plait discovery's status", discovery.try_status)
        with socket.create_connection((discovery.host, discovery.xds_port), timeout=5) as conn:
            conn.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")  # the HTTP/2 preface
            wait_for(
                "gRPC's trace of the accepted connection",
                lambda: "tcp_server_posix.cc" in discovery.log.read_text(errors="replace"),
                timeout=20,
            )
    except BaseException:
        print(discovery.log.read_text(errors="replace")[-4000:])
        raise
    finally:
        discovery.stop()
