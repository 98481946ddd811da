"""Helpers of the security e2e tests: plaintext probes, XFCC parsing, identities."""

from __future__ import annotations

import socket
from typing import Any

from labkit import Reply

TD = "cluster.local"


def spiffe(namespace: str, service_account: str) -> str:
    return f"spiffe://{TD}/ns/{namespace}/sa/{service_account}"


def header(reply: Reply, name: str) -> str | None:
    """A request header as the echo app received it (case-insensitive)."""
    headers: dict[str, Any] = reply.body.get("headers", {}) if isinstance(reply.body, dict) else {}
    return next((str(v) for k, v in headers.items() if k.lower() == name.lower()), None)


def xfcc_uris(reply: Reply) -> list[str]:
    """The `URI=` values of the x-forwarded-client-cert the app received."""
    value = header(reply, "x-forwarded-client-cert") or ""
    return [
        part.split("=", 1)[1]
        for element in value.split(",")
        for part in element.split(";")
        if part.startswith("URI=")
    ]


def plaintext_get(address: str, path: str = "/", extra: str = "") -> bytes:
    """One HTTP/1.1 GET in plain text, straight at a sidecar's inbound address (as a
    process without a sidecar would send it); returns whatever came back (b"" if the
    connection was closed or reset without an answer)."""
    host, port = address.rsplit(":", 1)
    request = f"GET {path} HTTP/1.1\r\nHost: echo\r\nConnection: close\r\n{extra}\r\n"
    out = b""
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        try:
            sock.sendall(request.encode())
            while chunk := sock.recv(65536):
                out += chunk
        except (ConnectionResetError, BrokenPipeError):
            pass
    return out
