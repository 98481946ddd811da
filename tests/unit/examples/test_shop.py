"""The shop demo (examples/shop): its apps without a mesh, and its mesh configuration.

Each app runs as a subprocess started the way plait starts it (``python -m app.X`` in
examples/shop with the Deployment's env), listening on ``PORT=0`` (it prints the port it
got), ``HTTP_PROXY`` unset and upstream URLs pointing at other test-started apps or at a
fake upstream served by the test itself.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web

SHOP = Path(__file__).resolve().parents[3] / "examples" / "shop"
READY = re.compile(r"listening on (http://127\.0\.0\.1:\d+)")
START_TIMEOUT_S = 20.0
ENV_DROP = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")

TRACE = {
    "x-request-id": "4f1c2a0e-7d3b-4a7e-9c55-1d0a5f6e8b21",
    "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    "tracestate": "congo=t61rcWkgMzE",
    "x-b3-traceid": "80f198ee56343ba864fe8b2a57d3eff7",
    "x-b3-spanid": "e457b5a2e4d86bd1",
    "x-b3-parentspanid": "05e3ac9a4f6e3b90",
    "x-b3-sampled": "1",
    "x-b3-flags": "1",
    "b3": "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90",
}

Doc = dict[str, Any]


# --------------------------------------------------------------------------- config


def load_docs() -> list[tuple[str, Doc]]:
    docs = []
    for path in sorted(SHOP.glob("*.yaml")):
        with path.open() as f:
            docs += [(path.name, d) for d in yaml.safe_load_all(f) if d]
    return docs


def by_kind(kind: str) -> dict[str, Doc]:
    return {d["metadata"]["name"]: d for _, d in load_docs() if d["kind"] == kind}


def container(deployment: Doc) -> Doc:
    c: Doc = deployment["spec"]["template"]["spec"]["containers"][0]
    return c


# --------------------------------------------------------------------------- processes


@dataclass
class App:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    url: str = ""

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, deadline: float) -> App:
        while True:
            match = READY.search(self.output())
            if match:
                self.url = match.group(1)
                return self
            if self.proc.poll() is not None:
                pytest.fail(f"{self.name} exited with {self.proc.returncode}:\n{self.output()}")
            if time.monotonic() > deadline:
                pytest.fail(f"{self.name} not listening after {START_TIMEOUT_S}s:\n{self.output()}")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


@dataclass
class Launcher:
    logdir: Path
    apps: list[App] = field(default_factory=list)

    def start(self, name: str, module: str, env: dict[str, str]) -> App:
        """Start ``python -m app.MODULE`` as plait would; do not wait for it."""
        full_env = {
            k: v
            for k, v in os.environ.items()
            if k.upper() not in ENV_DROP and not k.startswith("PLAIT_")
        }
        full_env |= {
            "PORT": "0",
            "NO_PROXY": "127.0.0.1,localhost",
            "PLAIT_INSTANCE": f"{name}-0",
            "PLAIT_WORKLOAD": name,
            "PLAIT_NAMESPACE": "default",
            "PYTHONUNBUFFERED": "1",
        }
        full_env |= env
        log = self.logdir / f"{name}-{len(self.apps)}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", f"app.{module}"],
                cwd=SHOP,
                env=full_env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        app = App(name, proc, log)
        self.apps.append(app)
        return app

    def start_deployment(self, name: str, urls: dict[str, str], **env: str) -> App:
        """Start a Deployment of the mesh config with its own env, except that
        ``http://SERVICE:8080`` becomes ``urls[SERVICE]``."""
        c = container(by_kind("Deployment")[name])
        assert c["command"] == ["python"] and c["args"][0] == "-m", c
        module = c["args"][1].removeprefix("app.")
        dep_env = {e["name"]: str(e["value"]) for e in c.get("env", [])}
        for key, value in dep_env.items():
            host = re.fullmatch(r"http://([a-z0-9-]+):8080", value)
            if host and host.group(1) in urls:
                dep_env[key] = urls[host.group(1)]
        return self.start(name, module, dep_env | env)

    def ready(self, *apps: App) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        for app in apps:
            app.wait_ready(deadline)

    def close(self) -> None:
        for app in reversed(self.apps):
            app.stop()


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, App]]:
    """The whole shop, wired app to app without sidecars (one replica each)."""
    launcher = Launcher(tmp_path_factory.mktemp("shop"))
    try:
        apps: dict[str, App] = {}
        for name in ("risk-assessment", "inventory", "reviews-v1", "reviews-v2"):
            apps[name] = launcher.start_deployment(name, {})
        launcher.ready(*apps.values())
        urls = {name: app.url for name, app in apps.items()}
        urls["reviews"] = urls["reviews-v1"]
        for name in ("payment", "orders", "frontend"):
            apps[name] = launcher.start_deployment(name, urls)
            launcher.ready(apps[name])
            urls[name] = apps[name].url
        yield apps
    finally:
        launcher.close()


@pytest.fixture
def launcher(tmp_path: Path) -> Iterator[Launcher]:
    launcher = Launcher(tmp_path)
    try:
        yield launcher
    finally:
        launcher.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        yield session


@dataclass
class Seen:
    method: str
    host: str
    path: str
    target: str  # the request target as sent: absolute-form when sent to a proxy
    headers: dict[str, str]
    body: Any


@dataclass
class FakeUpstream:
    """An upstream served by the test: records requests, answers per path prefix."""

    url: str = ""
    seen: list[Seen] = field(default_factory=list)
    answers: dict[str, tuple[int, Any]] = field(default_factory=dict)

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        body = await request.json() if request.can_read_body else None
        headers = {k.lower(): v for k, v in request.headers.items()}
        self.seen.append(
            Seen(request.method, request.host, request.path, request.raw_path, headers, body)
        )
        for prefix, (status, answer) in self.answers.items():
            if request.path.startswith(prefix):
                if isinstance(answer, str):
                    return web.Response(status=status, text=answer)
                return web.json_response(answer, status=status)
        return web.json_response({"service": "fake", "calls": []})


@pytest.fixture
async def fake() -> AsyncIterator[FakeUpstream]:
    upstream = FakeUpstream()
    upstream.answers = {
        "/reviews/": (200, {"service": "reviews", "reviews": [], "calls": []}),
        "/orders": (201, {"service": "orders", "order_id": "o-1", "amount": 1.0, "calls": []}),
        "/reserve": (200, {"service": "inventory", "unit_price": 2.5, "calls": []}),
        "/release": (200, {"service": "inventory", "calls": []}),
        "/charge": (200, {"service": "payment", "approved": True, "calls": []}),
        "/assess": (200, {"service": "risk-assessment", "acceptable": True, "calls": []}),
    }
    server = web.Server(upstream.handle)
    runner = web.ServerRunner(server)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        upstream.url = f"http://{host}:{port}"
        yield upstream
    finally:
        await runner.cleanup()


@pytest.fixture
def refused_url() -> Iterator[str]:
    """A URL whose port refuses connections (bound, never listening) for the whole test."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


async def get(
    http: aiohttp.ClientSession, url: str, headers: dict[str, str] | None = None
) -> tuple[int, Doc]:
    async with http.get(url, headers=headers) as resp:
        return resp.status, await resp.json()


async def post(http: aiohttp.ClientSession, url: str, body: Any) -> tuple[int, Doc]:
    async with http.post(url, json=body) as resp:
        return resp.status, await resp.json()


def call(doc: Doc, target: str, index: int = 0) -> Doc:
    """The ``index``-th recorded call of ``doc`` to ``target``."""
    found = [c for c in doc["calls"] if c["target"] == target]
    assert len(found) > index, f"no call #{index} to {target} in {doc['calls']}"
    result: Doc = found[index]
    return result


def walk(doc: Doc) -> Iterator[Doc]:
    yield doc
    for c in doc.get("calls", []):
        if "response" in c:
            yield from walk(c["response"])


def targets(doc: Doc) -> list[str]:
    return [c["target"] for c in doc["calls"]]


# --------------------------------------------------------------------------- tests


def test_mesh_config_is_consistent() -> None:
    services = by_kind("Service")
    deployments = by_kind("Deployment")
    assert set(services) == {
        "frontend",
        "orders",
        "inventory",
        "payment",
        "risk-assessment",
        "reviews",
    }
    for svc in services.values():
        assert svc["spec"]["ports"] == [
            {"name": "http", "port": 8080, "targetPort": 8080, "appProtocol": "http"}
        ]
    for name, dep in deployments.items():
        labels = dep["spec"]["template"]["metadata"]["labels"]
        assert set(labels) == {"app", "version"}, name
        assert dep["spec"]["selector"]["matchLabels"] == labels, name
        assert dep["spec"]["replicas"] == (2 if name == "orders" else 1), name
        assert dep["spec"]["template"]["spec"]["serviceAccountName"] == labels["app"], name
        assert services[labels["app"]]["spec"]["selector"] == {"app": labels["app"]}, name
        c = container(dep)
        assert (SHOP / "app" / f"{c['args'][1].removeprefix('app.')}.py").is_file(), name
        env = {e["name"]: e["value"] for e in c["env"]}
        assert all(isinstance(v, str) for v in env.values()), name
        assert env["VERSION"] == labels["version"], name
        for key, value in env.items():
            if key.endswith("_URL"):
                host = re.fullmatch(r"http://([a-z0-9-]+):8080", value)
                assert host and host.group(1) in services, (name, key, value)
    assert {
        d["spec"]["template"]["metadata"]["labels"]["version"]
        for d in deployments.values()
        if d["spec"]["template"]["metadata"]["labels"]["app"] == "reviews"
    } == {"v1", "v2"}

    gateway = by_kind("Gateway")["shop-gateway"]
    assert gateway["spec"]["selector"] == {"istio": "ingressgateway"}
    assert gateway["spec"]["servers"][0]["port"]["number"] == 80
    assert gateway["spec"]["servers"][0]["hosts"] == ["*"]
    vss = by_kind("VirtualService")
    assert vss["frontend"]["spec"]["gateways"] == ["shop-gateway"]
    assert vss["frontend"]["spec"]["http"][0]["route"][0]["destination"] == {
        "host": "frontend",
        "port": {"number": 8080},
    }
    assert vss["reviews"]["spec"]["http"][0]["route"] == [
        {"destination": {"host": "reviews", "subset": "v1"}, "weight": 100}
    ]
    subsets = by_kind("DestinationRule")["reviews"]["spec"]["subsets"]
    assert subsets == [
        {"name": "v1", "labels": {"version": "v1"}},
        {"name": "v2", "labels": {"version": "v2"}},
    ]
    for _, doc in load_docs():
        group = doc["apiVersion"].split("/")[0]
        if group.endswith("istio.io"):
            assert doc["apiVersion"] in (f"{group}/v1", f"{group}/v1beta1")


async def test_health_index_and_unknown_path(
    shop: dict[str, App], http: aiohttp.ClientSession
) -> None:
    for name, app in shop.items():
        status, doc = await get(http, f"{app.url}/healthz")
        assert status == 200 and doc["status"] == "ok", doc
        assert doc["instance"] == f"{name}-0"
    status, doc = await get(http, f"{shop['frontend'].url}/")
    assert status == 200 and "/checkout" in doc["examples"][0] and doc["calls"] == []
    status, doc = await get(http, f"{shop['frontend'].url}/nope")
    assert status == 404 and doc["service"] == "frontend" and doc["error"]


async def test_invoice_checkout_shows_the_whole_chain(
    shop: dict[str, App], http: aiohttp.ClientSession
) -> None:
    url = f"{shop['frontend'].url}/checkout?item=book&qty=2&payment=invoice"
    status, front = await get(http, url, TRACE)
    assert status == 200, front
    assert (front["service"], front["version"], front["instance"]) == (
        "frontend",
        "v1",
        "frontend-0",
    )
    assert front["checkout"] == "confirmed" and front["amount"] == 25.0
    assert front["reviews_available"] is True
    assert targets(front) == ["reviews", "orders"]

    reviews = call(front, "reviews")
    assert reviews["status"] == 200 and reviews["request"].endswith("/reviews/book")
    assert reviews["response"]["instance"] == "reviews-v1-0"

    orders = call(front, "orders")
    assert orders["status"] == 201 and orders["request"].startswith("POST ")
    order = orders["response"]
    assert order["service"] == "orders" and order["status"] == "confirmed"
    assert order["order_id"] == front["order_id"]
    assert targets(order) == ["inventory", "payment"]
    assert call(order, "inventory")["response"]["reserved"] is True

    payment = call(order, "payment")["response"]
    assert payment["approved"] is True and payment["method"] == "invoice"
    assert targets(payment) == ["risk-assessment"]
    risk = call(payment, "risk-assessment")["response"]
    assert risk["service"] == "risk-assessment" and risk["acceptable"] is True
    assert risk["customer"] == "alice" and risk["score"] == payment["risk_score"]

    nodes = list(walk(front))
    assert [n["service"] for n in nodes] == [
        "frontend",
        "reviews",
        "orders",
        "inventory",
        "payment",
        "risk-assessment",
    ]
    trace = {k: v for k, v in TRACE.items() if k != "x-request-id"}
    for node in nodes:
        assert node["x-request-id"] == TRACE["x-request-id"], node["service"]
        assert node["trace"] == trace, node["service"]
        assert node["instance"].startswith(node["service"]), node
        assert isinstance(node["calls"], list), node
    assert risk["calls"] == [] and call(order, "inventory")["response"]["calls"] == []


async def test_card_checkout_does_not_consult_risk_assessment(
    shop: dict[str, App], http: aiohttp.ClientSession
) -> None:
    url = f"{shop['frontend'].url}/checkout?item=mug&qty=3&payment=card"
    status, front = await get(http, url)
    assert status == 200, front
    assert front["amount"] == 24.0 and front["x-request-id"] is None
    payment = call(call(front, "orders")["response"], "payment")["response"]
    assert payment["approved"] is True and payment["method"] == "card"
    assert payment["calls"] == []
    assert "risk-assessment" not in [n["service"] for n in walk(front)]


@pytest.mark.parametrize(
    ("service", "method", "path", "body", "expected"),
    [
        (
            "frontend",
            "GET",
            "/checkout?item=book&payment=invoice",
            None,
            ["/reviews/book", "/orders"],
        ),
        (
            "orders",
            "POST",
            "/orders",
            {"item": "book", "qty": 1, "payment": "invoice", "customer": "alice"},
            ["/reserve", "/charge"],
        ),
        (
            "payment",
            "POST",
            "/charge",
            {"customer": "alice", "item": "book", "amount": 3.5, "method": "invoice"},
            ["/assess"],
        ),
    ],
)
async def test_trace_headers_are_forwarded_to_every_upstream(
    launcher: Launcher,
    fake: FakeUpstream,
    http: aiohttp.ClientSession,
    service: str,
    method: str,
    path: str,
    body: Doc | None,
    expected: list[str],
) -> None:
    urls = dict.fromkeys(("REVIEWS_URL", "ORDERS_URL", "INVENTORY_URL", "PAYMENT_URL"), fake.url)
    urls["RISK_ASSESSMENT_URL"] = fake.url
    app = launcher.start(service, service, urls)
    launcher.ready(app)
    headers = TRACE | {"x-unrelated": "keep-me-here", "authorization": "Bearer secret"}
    async with http.request(method, f"{app.url}{path}", json=body, headers=headers) as resp:
        doc = await resp.json()
        assert resp.status < 300, doc
    assert sorted(s.path for s in fake.seen) == sorted(expected)
    for seen in fake.seen:
        assert {k: seen.headers.get(k) for k in TRACE} == TRACE, seen.path
        assert "x-unrelated" not in seen.headers and "authorization" not in seen.headers


async def test_outbound_calls_go_through_http_proxy(
    launcher: Launcher, fake: FakeUpstream, http: aiohttp.ClientSession
) -> None:
    # As in the mesh: upstreams by service name, HTTP_PROXY = the sidecar's outbound port.
    app = launcher.start("frontend", "frontend", {"HTTP_PROXY": fake.url})
    launcher.ready(app)
    status, doc = await get(http, f"{app.url}/checkout?item=lamp", TRACE)
    assert status == 200, doc
    assert sorted((s.target, s.headers["host"]) for s in fake.seen) == [
        ("http://orders:8080/orders", "orders:8080"),
        ("http://reviews:8080/reviews/lamp", "reviews:8080"),
    ]
    assert call(doc, "orders")["request"] == "POST http://orders:8080/orders"


async def test_a_failing_required_dependency_gives_502_with_the_partial_chain(
    shop: dict[str, App],
    launcher: Launcher,
    http: aiohttp.ClientSession,
    refused_url: str,
) -> None:
    # The outage of the story: risk-assessment is unreachable, so invoice payment fails
    # all the way up, card payment keeps working, and the reserved stock is given back.
    urls = {"risk-assessment": refused_url, "inventory": shop["inventory"].url}
    payment = launcher.start_deployment("payment", urls)
    launcher.ready(payment)
    orders = launcher.start_deployment("orders", urls | {"payment": payment.url})
    launcher.ready(orders)
    frontend = launcher.start_deployment(
        "frontend", {"orders": orders.url, "reviews": shop["reviews-v1"].url}
    )
    launcher.ready(frontend)
    _, before = await get(http, f"{shop['inventory'].url}/stock")

    status, front = await get(http, f"{frontend.url}/checkout?item=book&payment=invoice", TRACE)
    assert status == 502, front
    assert "checkout failed" in front["error"]
    assert call(front, "reviews")["status"] == 200
    order_call = call(front, "orders")
    assert order_call["status"] == 502 and "payment failed" in order_call["error"]
    order = order_call["response"]
    assert targets(order) == ["inventory", "payment", "inventory"]
    assert call(order, "inventory", 1)["request"].endswith("/release")
    assert call(order, "inventory", 1)["status"] == 200
    payment_call = call(order, "payment")
    assert payment_call["status"] == 502
    risk = call(payment_call["response"], "risk-assessment")
    assert risk["status"] is None and "Connect" in risk["error"], risk
    assert "response" not in risk
    _, after = await get(http, f"{shop['inventory'].url}/stock")
    assert after["items"] == before["items"]

    status, front = await get(http, f"{frontend.url}/checkout?item=book&payment=card")
    assert status == 200, front


async def test_upstream_error_answers_are_reported(
    shop: dict[str, App], launcher: Launcher, fake: FakeUpstream, http: aiohttp.ClientSession
) -> None:
    # What Envoy answers when it cannot reach an upstream: a 503 with a text body.
    fake.answers["/orders"] = (503, "upstream connect error or disconnect/reset before headers")
    frontend = launcher.start(
        "frontend", "frontend", {"ORDERS_URL": fake.url, "REVIEWS_URL": shop["reviews-v1"].url}
    )
    launcher.ready(frontend)
    status, front = await get(http, f"{frontend.url}/checkout")
    assert status == 502, front
    orders = call(front, "orders")
    assert orders["status"] == 503 and orders["body"].startswith("upstream connect error")
    assert "503" in orders["error"] and "response" not in orders
    assert call(front, "reviews")["status"] == 200

    # reviews are optional: their failure is shown, the checkout goes on.
    fake.answers["/orders"] = (201, {"order_id": "o-9", "amount": 12.5, "calls": []})
    fake.answers["/reviews/"] = (500, {"error": "boom"})
    frontend2 = launcher.start(
        "frontend", "frontend", {"ORDERS_URL": fake.url, "REVIEWS_URL": fake.url}
    )
    launcher.ready(frontend2)
    status, front = await get(http, f"{frontend2.url}/checkout")
    assert status == 200 and front["reviews_available"] is False, front
    assert call(front, "reviews")["error"] == "HTTP 500: boom"


async def test_business_errors_pass_through_the_chain(
    shop: dict[str, App], http: aiohttp.ClientSession
) -> None:
    base = f"{shop['frontend'].url}/checkout"
    status, doc = await get(http, f"{base}?item=unicorn")
    assert status == 404 and "unknown item" in doc["error"], doc
    assert targets(doc) == ["reviews", "orders"]
    assert call(call(doc, "orders")["response"], "inventory")["status"] == 404

    status, doc = await get(http, f"{base}?item=lamp&qty=100000000")
    assert status == 409 and "not enough" in doc["error"], doc

    for query in ("qty=0", "qty=two", "payment=cash", "item="):
        status, doc = await get(http, f"{base}?{query}")
        assert status == 400, (query, doc)
        assert doc["service"] == "frontend" and doc["error"], query

    async with http.post(f"{shop['orders'].url}/orders", data=b"not json") as resp:
        assert resp.status == 400 and "JSON" in (await resp.json())["error"]


async def test_risky_invoice_is_declined_and_stock_released(
    shop: dict[str, App], http: aiohttp.ClientSession
) -> None:
    risk_url = f"{shop['risk-assessment'].url}/assess"
    first = await post(http, risk_url, {"customer": "eve", "item": "book"})
    second = await post(http, risk_url, {"customer": "eve", "item": "book"})
    assert first[0] == 200 and first[1]["score"] == second[1]["score"] >= 70
    assert first[1]["acceptable"] is False
    _, other = await post(http, risk_url, {"customer": "alice", "item": "book"})
    assert other["acceptable"] is True

    _, before = await get(http, f"{shop['inventory'].url}/stock")
    url = f"{shop['frontend'].url}/checkout?item=book&payment=invoice&customer=eve"
    status, front = await get(http, url)
    assert status == 402 and "invoice declined" in front["error"], front
    order = call(front, "orders")["response"]
    assert targets(order) == ["inventory", "payment", "inventory"]
    assert call(order, "payment")["response"]["approved"] is False
    _, after = await get(http, f"{shop['inventory'].url}/stock")
    assert after["items"] == before["items"]


async def test_risk_delay_ms_delays_the_assessment(
    shop: dict[str, App], launcher: Launcher, http: aiohttp.ClientSession
) -> None:
    slow = launcher.start_deployment("risk-assessment", {}, RISK_DELAY_MS="400")
    launcher.ready(slow)
    body = {"customer": "alice", "item": "book"}
    start = time.monotonic()
    status, doc = await post(http, f"{slow.url}/assess", body)
    assert status == 200 and doc["delay_ms"] == 400
    assert time.monotonic() - start >= 0.4

    _, fast = await post(http, f"{shop['risk-assessment'].url}/assess", body)
    assert fast["delay_ms"] == 0 and fast["score"] == doc["score"]

    # payment sees the delay; with its own client timeout below it, invoice fails (502).
    payment = launcher.start_deployment(
        "payment", {"risk-assessment": slow.url}, UPSTREAM_TIMEOUT_MS="100"
    )
    launcher.ready(payment)
    charge = {"customer": "alice", "item": "book", "amount": 1, "method": "invoice"}
    status, doc = await post(http, f"{payment.url}/charge", charge)
    assert status == 502, doc
    assert call(doc, "risk-assessment")["error"] == "no answer within 0.1s"
    status, doc = await post(http, f"{payment.url}/charge", charge | {"method": "card"})
    assert status == 200 and doc["approved"] is True


async def test_reviews_v2_adds_star_ratings(
    shop: dict[str, App], http: aiohttp.ClientSession
) -> None:
    _, v1 = await get(http, f"{shop['reviews-v1'].url}/reviews/book")
    _, v2 = await get(http, f"{shop['reviews-v2'].url}/reviews/book")
    assert (v1["version"], v2["version"]) == ("v1", "v2")
    assert v1["reviews"] and all("stars" not in r for r in v1["reviews"])
    assert "rating" not in v1
    assert [r["stars"] for r in v2["reviews"]] == [5, 4] and v2["rating"] == 4.5
    _, none = await get(http, f"{shop['reviews-v2'].url}/reviews/poster")
    assert none["reviews"] == [] and none["rating"] is None


def test_bad_configuration_exits_with_a_message(launcher: Launcher) -> None:
    app = launcher.start("risk-assessment", "risk_assessment", {"RISK_DELAY_MS": "soon"})
    assert app.proc.wait(timeout=START_TIMEOUT_S) != 0
    out = app.output()
    assert "RISK_DELAY_MS must be an integer" in out and "Traceback" not in out
