"""The proxy in a pod (`plait proxy sidecar`), end to end on the real API server.

`plait discovery --ca-dir` (mTLS xDS, the CA verifying projected tokens with TokenReview)
runs on the host at the test node's bridge address; the injection webhook runs here
(as in test_inject_node_e2e) with the control plane's addresses as
`plaitd.istio-system.svc:PORT`, which the Deployments' `hostAliases` point at the host (in
a real cluster the Service `plaitd` does). Three Deployments (a, b, c: one service
account each) applied with kubectl into a namespace labelled istio-injection=enabled are
injected and run by the test node agent (tests/kubenode.py); the proxy runs as uid 1337,
captured traffic and all.

Then: every pod becomes Ready, which on this node means the proxy answered 200 on
/healthz/ready (Envoy had its first clusters and listeners) before the app was started;
`curl http://b` from pod a's network namespace, as the app's user and with no proxy
variable, reaches b's app through both sidecars over mTLS (b's app sees a's SPIFFE ID in
x-forwarded-client-cert; b's proxy, scraped at its pod IP on the port of its
`prometheus.io/port` annotation, counts the request in istio_requests_total as mutual_tls
from a's principal); an AuthorizationPolicy applied with kubectl then gives c 403 and
a 200; with 20 s certificates, b's Envoy is handed a renewed one over SDS and
calls go on; the chart's ingress gateway, rendered by helm and run in a pod
(`plait proxy router` as uid 1337), routes a Gateway + VirtualService to b over mTLS with
its own identity, which the policy allows.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from lightkube import AsyncClient, KubeConfig

from kubecluster import Cluster, free_port
from kubediscovery import Discovery
from kubenode import NodeAgent
from loopthread import LoopThread, wait_for
from plait.ca import CertificateAuthority, ServingCertificate
from plait.controlplane.webhook import InjectionWebhook
from plait.inject import InjectSettings, WebhookEndpoint, webhook_configuration
from plait.kube.rootcert import RootCertPublisher
from plait.model.identity import CONTROL_PLANE_HOST

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="pods are network namespaces: root only")

TD = "cluster.local"
CHART = Path(__file__).resolve().parents[3] / "charts" / "plait"
GATEWAY = "istio-ingressgateway"
CERT_TTL_S = 20  # short: the agents renew at about half of it, within the test
APP_UID = 1000
APP = r"""
import http.server, json
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"xfcc": self.headers.get("x-forwarded-client-cert", "")}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("0.0.0.0", 8080), H).serve_forever()
"""


def deployment(name: str, ns: str, host_ip: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "serviceAccountName": name,
                    "terminationGracePeriodSeconds": 2,
                    "hostAliases": [{"ip": host_ip, "hostnames": [CONTROL_PLANE_HOST]}],
                    "containers": [
                        {
                            "name": "app",
                            "image": "python:3.12",
                            "args": ["-c", APP],
                            "ports": [{"name": "http", "containerPort": 8080}],
                            "securityContext": {"runAsUser": APP_UID, "runAsGroup": APP_UID},
                        }
                    ],
                },
            },
        },
    }


def service(ns: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "b", "namespace": ns},
        "spec": {
            "selector": {"app": "b"},
            "ports": [{"name": "http", "port": 80, "targetPort": 8080}],
        },
    }


def only_from(ns: str, *accounts: str) -> dict[str, Any]:
    principals = [f"{TD}/ns/{ns}/sa/{sa}" for sa in accounts]
    return {
        "apiVersion": "security.istio.io/v1",
        "kind": "AuthorizationPolicy",
        "metadata": {"name": "b-callers", "namespace": ns},
        "spec": {
            "selector": {"matchLabels": {"app": "b"}},
            "action": "ALLOW",
            "rules": [{"from": [{"source": {"principals": principals}}]}],
        },
    }


def chart_gateway(kube: Cluster, ns: str, cp: Discovery, ca_port: int, host_ip: str) -> str:
    """The chart's ingress gateway (ServiceAccount, Deployment, Service) rendered by helm
    into `ns`, its control-plane ports moved to the test's (the chart's are fixed) and a
    hostAlias to reach it; plus a Gateway and a VirtualService sending everything to b."""
    rendered = subprocess.run(
        [str(kube.bin / "helm"), "template", "plait", str(CHART), "-n", ns,
         "--show-only", "templates/gateway.yaml"],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    for doc in docs:
        if doc["kind"] != "Deployment":
            continue
        pod = doc["spec"]["template"]["spec"]
        [container] = pod["containers"]
        moved = {f"plaitd.{ns}.svc:15010": f"{CONTROL_PLANE_HOST}:{cp.xds_port}",
                 f"plaitd.{ns}.svc:15012": f"{CONTROL_PLANE_HOST}:{ca_port}"}  # fmt: skip
        args = container["args"]
        for old, new in moved.items():
            args[:] = [a.replace(old, new) for a in args]
        assert sum(CONTROL_PLANE_HOST in a for a in args) == 2, args
        pod["hostAliases"] = [{"ip": host_ip, "hostnames": [CONTROL_PLANE_HOST]}]
    routing = [
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "Gateway",
            "metadata": {"name": "web", "namespace": ns},
            "spec": {
                "selector": {"istio": "ingressgateway"},
                "servers": [
                    {"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}
                ],  # fmt: skip
            },
        },
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "VirtualService",
            "metadata": {"name": "web", "namespace": ns},
            "spec": {
                "hosts": ["*"],
                "gateways": ["web"],
                "http": [{"route": [{"destination": {"host": "b", "port": {"number": 80}}}]}],
            },
        },
    ]
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": docs + routing})


LAST_CALL: dict[str, str] = {}  # what the latest in-pod command said on stderr
CALLS: list[str] = []  # every call to b: when, who, the status


def in_pod(node: NodeAgent, ns: str, workload: str, *argv: str, uid: int = 0) -> str:
    """Run argv in the workload's (only) pod's network namespace with an empty
    environment (no proxy variable), as `uid`; stdout."""
    [running] = [r for key, r in node.pods.items() if key.startswith(f"{ns}/{workload}-")]
    user = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups"] if uid else []
    done = subprocess.run(
        ["ip", "netns", "exec", running.net.netns, "env", "-i", "PATH=/usr/bin:/bin", *user,
         *argv],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    LAST_CALL[workload] = f"{' '.join(argv)}: exit {done.returncode} {done.stderr.strip()}"
    return done.stdout


def call_b(node: NodeAgent, ns: str, caller: str) -> tuple[int, str]:
    """`curl http://b/` from `caller`'s pod as the app's user: (status, body)."""
    out = in_pod(
        node, ns, caller, "curl", "-sS", "-m", "5", "-w", "\n%{http_code}", "http://b/",
        uid=APP_UID,
    )  # fmt: skip
    body, _, code = out.rpartition("\n")
    LAST_CALL[caller] += f" -> {code} {body[:300]}"
    CALLS.append(f"{time.strftime('%H:%M:%S')} {caller} {code}")
    return int(code or 0), body


def served_serials(node: NodeAgent, ns: str, workload: str) -> set[str]:
    """Serial numbers of the workload certificates the pod's Envoy holds (admin /certs)."""
    text = in_pod(node, ns, workload, "curl", "-s", "-m", "5", "http://127.0.0.1:15000/certs")
    certs = json.loads(text or "{}").get("certificates", [])
    return {c["serial_number"] for entry in certs for c in entry.get("cert_chain", [])}


def settled(node: NodeAgent, ns: str, workload: str) -> bool:
    """The pod's Envoy drains no listener or filter chain: a connection opened before a
    config change (a caller's pooled one) is served by the old chain until drained."""
    text = in_pod(
        node, ns, workload, "curl", "-s", "-m", "5",
        "http://127.0.0.1:15000/stats?filter=^listener_manager.total_.*draining$",
    )  # fmt: skip
    values = [line.rpartition(":")[2].strip() for line in text.splitlines() if line]
    return len(values) == 2 and values == ["0", "0"]


def diagnostics(node: NodeAgent, ns: str, discovery: Discovery) -> str:
    parts = [
        f"--- discovery ---\n{discovery.log.read_text()[-4000:]}",
        f"last calls: {LAST_CALL}",
        f"calls: {CALLS}",
    ]
    for log in sorted((node.workdir / "logs").glob(f"{ns}_*")):
        parts.append(f"--- {log.name} ---\n{log.read_text(errors='replace')[-3000:]}")
    for running in node.pods.values():
        if running.net.namespace != ns:
            continue
        for envoy_log in (node.workdir / "pods" / running.net.netns).glob("*/envoy.envoy.log"):
            parts.append(f"--- {running.net.name} Envoy ---\n{envoy_log.read_text()[-3000:]}")
        for what in ("dynamic_listeners", "dynamic_route_configs"):
            with contextlib.suppress(OSError, ValueError):
                dump = json.loads(
                    subprocess.run(
                        [
                            "ip",
                            "netns",
                            "exec",
                            running.net.netns,
                            "curl",
                            "-s",
                            "-m",
                            "5",
                            f"http://127.0.0.1:15000/config_dump?resource={what}",
                        ],
                        capture_output=True,
                        text=True,
                        timeout=10,
                    ).stdout  # fmt: skip
                )
                names = [
                    (c.get("name") or c.get("route_config", {}).get("name"),
                     [v["name"] for v in c.get("route_config", {}).get("virtual_hosts", [])])
                    for c in dump.get("configs", [])
                ]  # fmt: skip
                rbac = json.dumps(dump).count("envoy.filters.http.rbac")
                parts.append(f"--- {running.net.name} {what} ---\n{names} rbac filters: {rbac}")
    return "\n".join(parts)


def test_two_injected_deployments_talk_over_mtls_through_their_sidecars(
    kube: Cluster, node: NodeAgent, tmp_path: Path
) -> None:
    run = uuid.uuid4().hex[:6]
    name, ns = f"plait-podproxy-{run}", f"mesh-{run}"
    host = str(node.network.gateway)
    ca_dir = tmp_path / "ca"
    ca = CertificateAuthority.load(ca_dir, TD, create=True)  # discovery loads the same CA
    kube.apply_crds()
    ca_port = free_port()
    extra = ("--ca-dir", str(ca_dir), "--ca-port", str(ca_port), "--cert-ttl", f"{CERT_TTL_S}s")
    discovery = Discovery(kube, tmp_path, extra=extra, host=host)
    loop = LoopThread()
    settings = InjectSettings(
        xds_address=f"{CONTROL_PLANE_HOST}:{discovery.xds_port}",
        ca_address=f"https://{CONTROL_PLANE_HOST}:{ca_port}",
    )
    webhook = InjectionWebhook(ServingCertificate(ca), settings)
    client = AsyncClient(KubeConfig.from_file(str(kube.kubeconfig)))
    loop.run(webhook.start())
    bundle = "".join(ca.trust_bundle()).encode()
    config = webhook_configuration(WebhookEndpoint(url=webhook.url), bundle, name=name)
    try:
        wait_for("plait discovery's status", discovery.try_status)
        kube.kubectl("apply", "-f", "-", input=json.dumps(config))
        kube.kubectl("create", "namespace", ns)
        kube.kubectl("label", "namespace", ns, "istio-injection=enabled")
        for sa in ("a", "b", "c"):
            kube.kubectl("create", "serviceaccount", sa, "-n", ns)
        publisher = RootCertPublisher(client, lambda: bundle.decode())
        assert loop.run(publisher.sync_once()) >= 1  # pods mount istio-ca-root-cert
        docs = [service(ns), *(deployment(d, ns, host) for d in ("a", "b", "c"))]
        kube.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                           "items": docs}))  # fmt: skip

        # Ready: on this node the app starts only once the proxy's /healthz/ready said 200
        wait_for(
            "the three pods",
            lambda: len(kube.kubectl("get", "pods", "-n", ns, "-o", "name").split()) == 3,
        )
        kube.kubectl("wait", "--for=condition=Ready", "pod", "--all", "-n", ns, "--timeout=50s")
        pods = json.loads(kube.kubectl("get", "pods", "-n", ns, "-o", "json"))["items"]
        assert len(pods) == 3
        for pod in pods:
            inits = {c["name"]: c for c in pod["spec"]["initContainers"]}
            assert inits["istio-proxy"]["args"][:2] == ["proxy", "sidecar"]
            statuses = {s["name"]: s for s in pod["status"]["initContainerStatuses"]}
            assert (
                statuses["istio-proxy"]["ready"] and "running" in statuses["istio-proxy"]["state"]
            )
        for workload in ("a", "b", "c"):
            [running] = [r for k, r in node.pods.items() if k.startswith(f"{ns}/{workload}-")]
            proxy = running.procs["istio-proxy"].pid
            # the agent dropped to 1337 (setpriv execs it: same pid), and so did its Envoy
            status = Path(f"/proc/{proxy}/status").read_text()
            assert re.search(r"^Uid:\s+1337\s", status, re.M), status
            health = f"http://{running.net.ip}:15021/healthz/ready"
            with urllib.request.urlopen(health, timeout=5) as r:
                assert r.status == 200

        # a → b through both sidecars, over mTLS; a's app has no proxy variable
        code, body = wait_for(
            "a's call to b", lambda: (lambda r: r if r[0] == 200 else None)(call_b(node, ns, "a"))
        )
        assert f"URI=spiffe://{TD}/ns/{ns}/sa/a" in json.loads(body)["xfcc"], body
        [running_a] = [r for k, r in node.pods.items() if k.startswith(f"{ns}/a-")]
        env = Path(f"/proc/{running_a.procs['app'].pid}/environ").read_bytes().split(b"\0")
        assert not [v for v in env if v.lower().startswith((b"http_proxy=", b"https_proxy="))]
        [b_pod] = json.loads(kube.kubectl("get", "pods", "-n", ns, "-l", "app=b", "-o", "json"))[
            "items"
        ]
        notes = b_pod["metadata"]["annotations"]
        metrics_url = (
            f"http://{b_pod['status']['podIP']}:{notes['prometheus.io/port']}"
            f"{notes['prometheus.io/path']}"
        )

        seen: list[str] = []

        def scraped() -> str | None:
            with urllib.request.urlopen(metrics_url, timeout=5) as r:
                text = r.read().decode()
            seen[:] = [x for x in text.splitlines() if x.startswith("istio_requests_total")]
            for line in text.splitlines():
                if (
                    line.startswith("istio_requests_total{")
                    and 'reporter="destination"' in line
                    and 'source_workload="a"' in line
                    and 'connection_security_policy="mutual_tls"' in line
                    and f'source_principal="spiffe://{TD}/ns/{ns}/sa/a"' in line
                ):
                    return line
            return None

        try:
            print(wait_for("b's Envoy to count a's mTLS request", scraped, 15))
        except AssertionError:
            print("scraped:", *seen, sep="\n")
            raise

        # the agent keeps rotating the certificate (CERT_TTL_S): Envoy gets each new one
        # over SDS and the calls go on
        first = served_serials(node, ns, "b")
        assert first
        wait_for(
            "b's Envoy to hold a renewed certificate",
            lambda: served_serials(node, ns, "b") - first,
            CERT_TTL_S * 1.5,
        )
        assert call_b(node, ns, "a")[0] == 200

        # the chart's ingress gateway in a pod (plait proxy router, uid 1337) routes to b
        kube.kubectl("apply", "-f", "-", input=chart_gateway(kube, ns, discovery, ca_port, host))
        wait_for(
            "the gateway pod",
            lambda: kube.kubectl(
                "get", "pods", "-n", ns, "-l", "istio=ingressgateway", "-o", "name"
            ),  # fmt: skip
        )
        kube.kubectl(
            "wait", "--for=condition=Ready", "pod", "-l", "istio=ingressgateway", "-n", ns,
            "--timeout=50s",
        )  # fmt: skip
        [gw_pod] = json.loads(
            kube.kubectl("get", "pods", "-n", ns, "-l", "istio=ingressgateway", "-o", "json")
        )["items"]
        gateway_url = f"http://{gw_pod['status']['podIP']}:8080/"  # Service port 80's target

        def through_gateway() -> tuple[int, str]:
            try:
                with urllib.request.urlopen(gateway_url, timeout=5) as r:
                    return r.status, r.read().decode()
            except urllib.error.HTTPError as e:
                return e.code, ""
            except OSError:
                return 0, ""

        code, body = wait_for(
            "a request through the gateway",
            lambda: (lambda r: r if r[0] == 200 else None)(through_gateway()),
        )
        assert f"URI=spiffe://{TD}/ns/{ns}/sa/{GATEWAY}" in json.loads(body)["xfcc"], body

        # an AuthorizationPolicy applied with kubectl: c is refused, a and the gateway not
        assert call_b(node, ns, "c")[0] == 200
        kube.kubectl("apply", "-f", "-", input=json.dumps(only_from(ns, "a", GATEWAY)))
        wait_for(
            "c refused, b's old chains drained",
            lambda: call_b(node, ns, "c")[0] == 403 and settled(node, ns, "b"),
            30,
        )
        assert call_b(node, ns, "a")[0] == 200
        assert call_b(node, ns, "c")[0] == 403
        assert through_gateway()[0] == 200
    except BaseException:
        print(diagnostics(node, ns, discovery))
        raise
    finally:
        kube.kubectl("delete", "namespace", ns, "--wait=false", "--ignore-not-found")
        kube.kubectl("delete", "mutatingwebhookconfiguration", name, "--ignore-not-found")
        discovery.stop()
        loop.run(webhook.stop())
        loop.run(client.close())
        loop.close()
