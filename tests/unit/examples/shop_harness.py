"""The shop's apps run for tests: launcher, fake upstream, request helpers.

Each app runs as a subprocess started the way plait starts it (``python -m app.X`` in
examples/shop with the Deployment's env), listening on ``PORT=0`` (it prints the port it
got), ``HTTP_PROXY`` unset and upstream URLs pointing at other test-started apps or at a
fake upstream served by the test itself.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web

from prockit import stop_process

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
        stop_process(self.proc, grace=5)


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
