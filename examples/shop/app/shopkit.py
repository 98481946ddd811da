"""Shared parts of the shop demo services.

Every service is a small aiohttp app built with :func:`make_app` and started with
:func:`run`. This module provides what they have in common:

- :class:`Config` read from the environment plait (or Kubernetes) gives a replica;
- :class:`Chain`, which makes outbound calls through the sidecar (``HTTP_PROXY`` from the
  environment), forwards the trace headers of the inbound request, records every call and
  answers with a JSON document that nests the responses of the services it called;
- JSON responses, ``/healthz`` and an error middleware: a failure is always a JSON
  document, never a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import ClientError, ClientSession, ClientTimeout, web

JSONDict = dict[str, Any]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: Headers copied from the inbound request to every outbound call, so that a trace spans
#: every hop (Envoy creates and samples spans; the application must carry the context).
TRACE_HEADERS = (
    "x-request-id",
    "traceparent",
    "tracestate",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-flags",
    "b3",
)

log = logging.getLogger("shop")


class ConfigError(Exception):
    """A bad environment variable; the process exits with this message."""


class HttpError(Exception):
    """Raised by a handler to answer with ``status`` and a JSON ``error``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Config:
    service: str
    version: str
    instance: str
    workload: str
    namespace: str
    host: str
    port: int
    timeout_s: float
    env: Mapping[str, str] = field(repr=False, compare=False)

    @classmethod
    def from_env(cls, service: str, env: Mapping[str, str] | None = None) -> Config:
        env = dict(os.environ if env is None else env)
        instance = env.get("PLAIT_INSTANCE") or env.get("HOSTNAME") or f"{service}-local"
        return cls(
            service=service,
            version=env.get("VERSION", "v1"),
            instance=instance,
            workload=env.get("PLAIT_WORKLOAD", service),
            namespace=env.get("PLAIT_NAMESPACE", "default"),
            # in a pod (POD_IP, as Kubernetes' downward API gives it) every address, as
            # apps in Kubernetes do; locally without pods only loopback
            host=env.get("HOST") or ("0.0.0.0" if env.get("POD_IP") else "127.0.0.1"),
            port=env_int(env, "PORT", 8080, minimum=0),
            timeout_s=env_int(env, "UPSTREAM_TIMEOUT_MS", 30_000, minimum=1) / 1000,
            env=env,
        )

    def upstream(self, name: str, default: str) -> str:
        """The base URL of an upstream service, e.g. ``ORDERS_URL=http://orders:8080``."""
        return self.env.get(name, default).rstrip("/")


def env_int(env: Mapping[str, str], name: str, default: int, *, minimum: int = 0) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")
    return value


CONFIG = web.AppKey("config", Config)
SESSION = web.AppKey("session", ClientSession)


def _dumps(obj: Any) -> str:
    return json.dumps(obj, indent=2) + "\n"


def json_response(doc: JSONDict, status: int = 200) -> web.Response:
    return web.json_response(doc, status=status, dumps=_dumps)


def trace_headers(request: web.Request) -> dict[str, str]:
    """The trace headers of ``request`` (those present), to put on outbound calls."""
    return {h: request.headers[h] for h in TRACE_HEADERS if h in request.headers}


def identity(request: web.Request) -> JSONDict:
    """``service``, ``version``, ``instance`` and what the service saw of the request."""
    cfg = request.app[CONFIG]
    doc: JSONDict = {
        "service": cfg.service,
        "version": cfg.version,
        "instance": cfg.instance,
        "x-request-id": request.headers.get("x-request-id"),
        # Set by the sidecar that delivered this request (plait's inbound route), so the
        # chain shows which sidecars the call crossed; absent when called directly.
        "sidecar": request.headers.get("x-plait-sidecar"),
    }
    trace = {k: v for k, v in trace_headers(request).items() if k != "x-request-id"}
    if trace:
        doc["trace"] = trace
    # Under mTLS the sidecar tells the app who called (as Istio does).
    xfcc = request.headers.get("x-forwarded-client-cert")
    if xfcc:
        peers = [p[4:] for p in xfcc.replace(",", ";").split(";") if p.startswith("URI=")]
        doc["peer"] = peers[-1] if peers else xfcc
    return doc


@dataclass
class Call:
    """One outbound call and what came back."""

    target: str
    method: str
    url: str
    status: int | None = None
    elapsed_ms: float = 0.0
    response: JSONDict | None = None
    body: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def data(self) -> JSONDict:
        return self.response or {}

    def failure_status(self) -> int:
        """What a caller answers when this required call failed: a client error of the
        upstream (404, 409, 402 ...) is passed on; anything else is a bad gateway."""
        if self.status is not None and 400 <= self.status < 500:
            return self.status
        return 502

    def to_json(self) -> JSONDict:
        doc: JSONDict = {
            "target": self.target,
            "request": f"{self.method} {self.url}",
            "status": self.status,
            "elapsed_ms": self.elapsed_ms,
        }
        if self.error is not None:
            doc["error"] = self.error
        if self.response is not None:
            doc["response"] = self.response
        elif self.body:
            doc["body"] = self.body
        return doc


class Chain:
    """Outbound calls made while serving one inbound request, and the reply that shows them."""

    def __init__(self, request: web.Request) -> None:
        self.request = request
        self.calls: list[Call] = []
        self._headers = trace_headers(request)

    async def call(
        self, target: str, method: str, url: str, *, json_body: JSONDict | None = None
    ) -> Call:
        """Call ``url`` (through the sidecar, with the trace headers); never raises for
        network or HTTP errors: they are recorded in the returned :class:`Call`."""
        record = Call(target, method, url)
        self.calls.append(record)  # before any await: the order of calls is kept
        session = self.request.app[SESSION]
        timeout = self.request.app[CONFIG].timeout_s
        start = time.monotonic()
        try:
            async with session.request(method, url, json=json_body, headers=self._headers) as resp:
                record.status = resp.status
                raw = await resp.read()
        except TimeoutError:
            record.error = f"no answer within {timeout:g}s"
        except (ClientError, OSError, ValueError) as exc:
            record.error = f"{type(exc).__name__}: {exc}".rstrip(": ")
        else:
            text = raw.decode("utf-8", errors="replace")
            try:
                parsed = json.loads(text)
            except ValueError:
                parsed = None
            if isinstance(parsed, dict):
                record.response = parsed
            else:
                record.body = text.strip()[:500]
            if not record.ok:
                detail = record.data.get("error") or record.body or resp.reason
                record.error = f"HTTP {record.status}" + (f": {detail}" if detail else "")
        finally:
            record.elapsed_ms = round((time.monotonic() - start) * 1000, 1)
        return record

    def reply(self, http_status: int = 200, /, **fields: Any) -> web.Response:
        doc = identity(self.request)
        doc.update(fields)
        doc["calls"] = [c.to_json() for c in self.calls]
        return json_response(doc, http_status)

    def fail(self, call: Call, message: str) -> web.Response:
        """Answer for a failed required dependency, with the chain so far."""
        return self.reply(call.failure_status(), error=f"{message}: {call.error}")


def answer(request: web.Request, http_status: int = 200, /, **fields: Any) -> web.Response:
    """The reply of a handler that called nobody (``calls`` is empty)."""
    return Chain(request).reply(http_status, **fields)


async def read_json(request: web.Request) -> JSONDict:
    try:
        body = await request.json()
    except ValueError:
        raise HttpError(400, "request body must be JSON") from None
    if not isinstance(body, dict):
        raise HttpError(400, "request body must be a JSON object")
    return body


def get_str(body: Mapping[str, Any], name: str, default: str | None = None) -> str:
    value = body.get(name, default)
    if not isinstance(value, str) or not value:
        raise HttpError(400, f"{name!r} must be a non-empty string")
    return value


def get_int(body: Mapping[str, Any], name: str, default: int | None = None) -> int:
    value = body.get(name, default)
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise HttpError(400, f"{name!r} must be a positive integer")
    return value


def get_number(body: Mapping[str, Any], name: str) -> float:
    value = body.get(name)
    if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
        raise HttpError(400, f"{name!r} must be a non-negative number")
    return float(value)


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except HttpError as exc:
        return answer(request, exc.status, error=exc.message)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return answer(request, exc.status, error=exc.reason)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return answer(request, 500, error=f"internal error: {type(exc).__name__}: {exc}")


async def _healthz(request: web.Request) -> web.Response:
    return answer(request, status="ok")


async def _client_session(app: web.Application) -> AsyncIterator[None]:
    # trust_env: HTTP_PROXY / NO_PROXY from the environment, so every outbound call goes
    # through the replica's sidecar.
    timeout = ClientTimeout(total=app[CONFIG].timeout_s)
    async with ClientSession(trust_env=True, timeout=timeout) as session:
        app[SESSION] = session
        yield


def make_app(cfg: Config, routes: list[web.RouteDef]) -> web.Application:
    app = web.Application(middlewares=[_errors])
    app[CONFIG] = cfg
    app.cleanup_ctx.append(_client_session)
    app.router.add_get("/healthz", _healthz)
    app.add_routes(routes)
    return app


ACCESS_LOG_FORMAT = '%a "%r" %s %b %Tfs x-request-id=%{x-request-id}i'


def run(create_app: Callable[[], web.Application]) -> None:
    """Build the app and serve it on ``$HOST:$PORT`` until SIGINT/SIGTERM.

    Prints ``... listening on http://HOST:PORT`` once bound (``PORT=0`` picks a free port).
    """
    logging.basicConfig(
        level=logging.INFO, stream=sys.stdout, format="%(asctime)s %(name)s %(message)s"
    )
    try:
        app = create_app()
        asyncio.run(_serve(app))
    except ConfigError as exc:
        sys.exit(f"configuration error: {exc}")
    except KeyboardInterrupt:
        pass


async def _serve(app: web.Application) -> None:
    cfg = app[CONFIG]
    runner = web.AppRunner(
        app, access_log_format=ACCESS_LOG_FORMAT, handle_signals=False, shutdown_timeout=5.0
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, cfg.host, cfg.port)
        try:
            await site.start()
        except OSError as exc:
            raise ConfigError(f"cannot listen on {cfg.host}:{cfg.port}: {exc}") from None
        host, port = runner.addresses[0][:2]
        print(
            f"{cfg.service} {cfg.version} ({cfg.instance}) listening on http://{host}:{port}",
            flush=True,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()
