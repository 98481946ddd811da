"""Envoy admin JSON for tests of `plait proxy-config`: a config dump shaped like a lab
sidecar's (`client-0`, trimmed from a real Envoy 1.40 dump), `/clusters?format=json`,
`/certs`, certificates to put in SDS secrets, and a fake admin server that serves them.

Importable from every test directory (tests/conftest.py puts this directory on sys.path).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

Json = dict[str, Any]
ADMIN = "type.googleapis.com/envoy.admin.v3."
ECHO = "outbound|8080||echo.default.svc.cluster.local"
SPIFFE = "spiffe://cluster.local/ns/default/sa/client"
NOT_BEFORE = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
NOT_AFTER = dt.datetime(2030, 1, 2, tzinfo=dt.UTC)
LEAF_SERIAL = 0x6EC89DF4C8CCA0D5A3425AA148395DACB3FB02BC
ROOT_SERIAL = 0x0467F7EA1B2A75FAC159CAB9B4130B9F6E8115D6  # 0x04...: /certs prints "0467..."


def certificate(serial: int, *, uri: str | None = None, ca: bool = False) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test")])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(NOT_BEFORE)
        .not_valid_after(NOT_AFTER)
    )
    if ca:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
    if uri:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(uri)]), False
        )
    return builder.sign(key, hashes.SHA256())


def inline(*certs: x509.Certificate) -> Json:
    pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)
    return {"inline_bytes": base64.b64encode(pem).decode()}


def sds(name: str) -> Json:
    return {"name": name, "sds_config": {"ads": {}}}


def upstream_tls(*, cert: str | None = "default") -> Json:
    common: Json = {
        "combined_validation_context": {"validation_context_sds_secret_config": sds("ROOTCA")}
    }
    if cert is not None:
        common["tls_certificate_sds_secret_configs"] = [sds(cert)]
    return {
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
            "common_tls_context": common,
        },
    }


def eds_cluster(name: str) -> Json:
    return {
        "name": name,
        "type": "EDS",
        "eds_cluster_config": {"eds_config": {"ads": {}}, "service_name": name},
        "circuit_breakers": {
            "thresholds": [
                {
                    "max_connections": 4294967295,
                    "max_pending_requests": 4294967295,
                    "max_requests": 4294967295,
                    "max_retries": 4294967295,
                }
            ]
        },
        "transport_socket_matches": [
            {
                "name": "tlsMode-istio",
                "match": {"tlsMode": "istio"},
                "transport_socket": upstream_tls(),
            },
            {
                "name": "tlsMode-disabled",
                "match": {},
                "transport_socket": {"name": "envoy.transport_sockets.raw_buffer"},
            },
        ],
    }


def socket(port: int, host: str = "127.0.0.1") -> Json:
    return {"socket_address": {"address": host, "port_value": port}}


def assignment(cluster: str, *ports: int, tls_mode: str | None = "istio") -> Json:
    hosts = []
    for port in ports:
        host: Json = {"endpoint": {"address": socket(port)}, "health_status": "HEALTHY"}
        if tls_mode is not None:
            host["metadata"] = {
                "filter_metadata": {"envoy.transport_socket_match": {"tlsMode": tls_mode}}
            }
        hosts.append(host)
    return {"cluster_name": cluster, "endpoints": [{"lb_endpoints": hosts}]}


def hcm(route: str, *http: str) -> Json:
    return {
        "name": "envoy.filters.network.http_connection_manager",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "rds": {"config_source": {"ads": {}}, "route_config_name": route},
            "http_filters": [{"name": f"envoy.filters.http.{h}"} for h in (*http, "router")],
        },
    }


def bootstrap() -> Json:
    return {
        "node": {
            "id": "sidecar~client-0.default",
            "cluster": "client",
            "metadata": {
                "NAMESPACE": "default",
                "LABELS": {"app": "client"},
                "WORKLOAD_NAME": "client",
            },
            "user_agent_build_version": {"version": {"major_number": 1, "minor_number": 40}},
        },
        "static_resources": {
            "clusters": [
                {
                    "name": "xds-grpc",
                    "type": "STATIC",
                    "transport_socket": upstream_tls(),
                    "load_assignment": assignment("xds-grpc", 15010, tls_mode=None),
                }
            ]
        },
        "dynamic_resources": {
            "ads_config": {
                "api_type": "GRPC",
                "grpc_services": [{"envoy_grpc": {"cluster_name": "xds-grpc"}}],
            }
        },
        "admin": {"address": socket(0)},
    }


def config_dump(*, secrets: list[Json] | None = None) -> Json:
    """A sidecar's dump with `include_eds`: clusters, endpoints, listeners, routes, secrets."""
    leaf, root = certificate(LEAF_SERIAL, uri=SPIFFE), certificate(ROOT_SERIAL, ca=True)
    default_secrets = [
        {
            "name": "default",
            "secret": {
                "name": "default",
                "tls_certificate": {
                    "certificate_chain": inline(leaf),
                    "private_key": {"inline_bytes": "W3JlZGFjdGVkXQ=="},
                },
            },
        },
        {
            "name": "ROOTCA",
            "secret": {"name": "ROOTCA", "validation_context": {"trusted_ca": inline(root)}},
        },
    ]
    inbound = {
        "name": "inbound|9000||",
        "type": "STATIC",
        "load_assignment": assignment("inbound|9000||", 9000, tls_mode=None),
    }
    return {
        "configs": [
            {"@type": ADMIN + "BootstrapConfigDump", "bootstrap": bootstrap()},
            {
                "@type": ADMIN + "ClustersConfigDump",
                "static_clusters": [{"cluster": bootstrap()["static_resources"]["clusters"][0]}],
                "dynamic_active_clusters": [{"cluster": eds_cluster(ECHO)}, {"cluster": inbound}],
            },
            {
                "@type": ADMIN + "EndpointsConfigDump",
                "dynamic_endpoint_configs": [{"endpoint_config": assignment(ECHO, 7001, 7002)}],
            },
            {
                "@type": ADMIN + "ListenersConfigDump",
                "dynamic_listeners": [
                    {
                        "name": "virtualInbound",
                        "active_state": {
                            "listener": {
                                "name": "virtualInbound",
                                "address": socket(7000),
                                "filter_chains": [
                                    {
                                        "name": "inbound-mtls",
                                        "filter_chain_match": {"transport_protocol": "tls"},
                                        "filters": [hcm("inbound|9000||", "rbac")],
                                    },
                                    {
                                        "name": "inbound-plaintext",
                                        "filter_chain_match": {"transport_protocol": "raw_buffer"},
                                        "filters": [hcm("inbound|9000||")],
                                    },
                                ],
                            }
                        },
                    }
                ],
            },
            {
                "@type": ADMIN + "RoutesConfigDump",
                "dynamic_route_configs": [
                    {
                        "route_config": {
                            "name": "outbound",
                            "virtual_hosts": [
                                {
                                    "name": "echo.default.svc.cluster.local:8080",
                                    "domains": ["echo.default.svc.cluster.local:8080", "echo:8080"],
                                    "routes": [
                                        {
                                            "match": {"prefix": "/"},
                                            "route": {"cluster": ECHO},
                                            "name": "default",
                                        }
                                    ],
                                }
                            ],
                        }
                    }
                ],
            },
            {
                "@type": ADMIN + "SecretsConfigDump",
                "dynamic_active_secrets": secrets if secrets is not None else default_secrets,
            },
        ]
    }


def clusters_json() -> Json:
    """`/clusters?format=json` for the dump above: echo's two hosts, one ejected."""
    return {
        "cluster_statuses": [
            {
                "name": ECHO,
                "host_statuses": [
                    {
                        "address": socket(7001),
                        "health_status": {"eds_health_status": "HEALTHY"},
                        "weight": 1,
                    },
                    {
                        "address": socket(7002),
                        "health_status": {
                            "eds_health_status": "HEALTHY",
                            "failed_outlier_check": True,
                        },
                        "weight": 3,
                    },
                ],
            },
            {"name": "PassthroughCluster"},
        ]
    }


def certs_json(*serials: str) -> Json:
    """`/certs` listing certificates with these serials (hex, as Envoy prints them)."""
    return {
        "certificates": [
            {"cert_chain": [{"serial_number": s, "subject_alt_names": []}], "ca_cert": []}
            for s in serials
        ]
    }


class _AdminHandler(BaseHTTPRequestHandler):
    """Answers like an Envoy admin: JSON (or raw bytes) for the paths in `server.pages`."""

    server: _AdminServer

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        body = self.server.pages.get(self.path)
        if body is None:
            self.send_error(404)
            return
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_args: object) -> None:
        pass


class _AdminServer(ThreadingHTTPServer):
    pages: dict[str, Any]


@contextmanager
def fake_admin(pages: dict[str, Any]) -> Iterator[str]:
    """An HTTP server on 127.0.0.1 serving `pages` (path with query → JSON); yields
    its HOST:PORT. Tests may change `pages` while it runs."""
    server = _AdminServer(("127.0.0.1", 0), _AdminHandler)
    server.pages = pages
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def admin_pages() -> dict[str, Any]:
    """Every admin page `plait proxy-config` reads, for the sidecar dump above."""
    dump = config_dump()
    return {
        "/config_dump": dump,
        "/config_dump?include_eds": dump,
        "/clusters?format=json": clusters_json(),
        "/certs": certs_json(f"{LEAF_SERIAL:x}"),
        "/server_info": {"version": "abc/1.40.0/Clean/RELEASE/BoringSSL"},
    }
