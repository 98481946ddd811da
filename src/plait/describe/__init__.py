"""`plait describe SERVICE`: which config applies to a service and where a request goes.

Pure: reads a `MeshSnapshot` and the loaded config, never the disk or a running mesh
(the CLI adds live replicas from `plait status`). One module per section.
"""

from plait.describe.evaluate import Decision, Request, evaluate
from plait.describe.lookup import find_service, service_names
from plait.describe.report import describe
from plait.describe.route import RouteQuery, UnknownCaller

__all__ = [
    "Decision",
    "Request",
    "RouteQuery",
    "UnknownCaller",
    "describe",
    "evaluate",
    "find_service",
    "service_names",
]
