"""The ingress gateway of `plait up`: one Envoy for every Gateway, and its host ports.

Host ports. Each served Gateway server port (see `translate.gateway.gateway_port_plans`)
is mapped to a host port: the first plain-text (HTTP) port to `--gateway-port`, every
other one (HTTPS included) to a free port; `plait status` lists the map (`gatewayPorts`).
The map travels in the gateway's node metadata (`GATEWAY_PORTS`), which an Envoy reads
once, at start.

New ports while the mesh runs. A server port added to a Gateway therefore needs a new
Envoy, started make-before-break: the new one gets the old map plus a host port for each
new server port (ports that stay keep their host ports) and the same node id; it binds
those host ports *next to* the old Envoy (Envoy listeners set SO_REUSEPORT, so two
processes may listen on one port and the kernel spreads new connections between them).
Once it is ready and has ACKed its config, the old Envoy is drained and stopped by its
supervisor (health check failed, listeners drained gracefully, then SIGTERM), so no
request on an existing port is lost. A removed server port needs no new Envoy: its
listener leaves with the config, and its host port stays reserved in the map.
"""

from __future__ import annotations

from collections.abc import Mapping

from plait.errors import StartupError
from plait.local.plan import Plan
from plait.local.ports import can_bind, free_port
from plait.model.labels import Labels
from plait.model.proxy import Proxy, ProxyKind, node_id

HOST = "127.0.0.1"
NAME = "istio-ingressgateway"
NAMESPACE = "istio-system"


def host_ports(plan: Plan, current: Mapping[int, int], gateway_port: int) -> list[tuple[int, int]]:
    """(server port, host port) for every served port; ports in `current` keep theirs.

    The first plain-text port goes on `gateway_port` (0: a free port) unless that host
    port already serves another server port. Raises StartupError if it is taken.
    """
    first = plan.first_plain_gateway_port()
    used = set(current.values())
    mapping = [(p, h) for p, h in current.items()]
    for server_port in plan.gateway_server_ports:
        if server_port in current:
            continue
        if server_port == first and gateway_port and gateway_port not in used:
            if not can_bind(HOST, gateway_port):
                raise StartupError(
                    f"gateway port {gateway_port} is already in use; "
                    "pass --gateway-port N (or 0 for any free port)"
                )
            host = gateway_port
        else:
            host = free_port()
        used.add(host)
        mapping.append((server_port, host))
    return mapping


def has_new_ports(plan: Plan, current: Mapping[int, int]) -> bool:
    """True when a served server port has no host port yet (a new Envoy is needed)."""
    return any(p not in current for p in plan.gateway_server_ports)


def gateway_url(plan: Plan, ports: Mapping[int, int]) -> str | None:
    """The URL printed as `gateway:`: the first plain-text port's host port."""
    first = plan.first_plain_gateway_port()
    if first is None or first not in ports:
        return None
    return f"http://{HOST}:{ports[first]}"


def gateway_proxy(ports: list[tuple[int, int]]) -> Proxy:
    return Proxy(
        id=node_id(ProxyKind.GATEWAY, NAME, NAMESPACE),
        kind=ProxyKind.GATEWAY,
        workload=NAME,
        namespace=NAMESPACE,
        service_account=f"{NAME}-service-account",
        labels=Labels.of({"istio": "ingressgateway", "app": NAME}),
        address=HOST,
        gateway_ports=tuple(sorted(ports)),
    )


def gateway_name(generation: int = 0) -> str:
    """The gateway's name for files and its token; each replacement Envoy has its own."""
    return f"{NAME}.{NAMESPACE}" + (f".{generation}" if generation else "")
