"""The xDS side of plait: the ADS server (State of the World and delta) and what it
depends on.

    ConfigSource        the protocol the server reads configuration from (source.py)
    StaticConfigSource  an in-memory ConfigSource for tests and benchmarks
    AdsServer           the grpc.aio server; statuses() and wait_synced() (server.py)
    ServerTls           mutual TLS and proxy authorization for the ADS port (auth.py)
    ProxyStatus         one proxy's sync state per type, for `plait status` (status.py)
    XdsCounters         the server's counters; XdsObserver receives its timings (status.py)

Delta (incremental) xDS is what plait's bootstrap asks for; SotW is served too.
"""

from plait.xds.auth import ProxyAdmission, ServerTls, ServingCredentials
from plait.xds.server import AdsServer, Rejection
from plait.xds.source import ConfigSource, StaticConfigSource
from plait.xds.status import (
    NoObserver,
    ProxyStatus,
    PushReason,
    TypeStatus,
    XdsCounters,
    XdsObserver,
)
from plait.xds.typestate import SyncState

__all__ = [
    "AdsServer",
    "ConfigSource",
    "NoObserver",
    "ProxyAdmission",
    "ProxyStatus",
    "PushReason",
    "Rejection",
    "ServerTls",
    "ServingCredentials",
    "StaticConfigSource",
    "SyncState",
    "TypeStatus",
    "XdsCounters",
    "XdsObserver",
]
