"""The `plait capture apply` command line for a pod, as an injector writes it into the
pod's init container (Istio's injector renders istio-iptables arguments the same way).

Checking the annotations here, at injection time, lets a webhook refuse a pod with an
error naming the bad annotation instead of leaving it stuck on a failing init container.
Pure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from plait.capture.settings import ANNOTATIONS, PROXY_UID, from_annotations

DEFAULT_PROXY_PORTS = (15020, 15021, 15090)
"""Never captured inbound, as Istio's injector excludes them (agent, health, metrics)."""


def apply_argv(
    annotations: Mapping[str, str],
    proxy_uid: int = PROXY_UID,
    proxy_ports: Sequence[int] = DEFAULT_PROXY_PORTS,
    program: Sequence[str] = ("plait",),
) -> list[str]:
    """argv that applies a pod's capture rules; raises CaptureSettingsError for a bad value.

    Only the capture annotations are passed on, in a fixed order, so equal pods get equal
    init containers.
    """
    from_annotations(annotations)  # raises, naming the annotation
    argv = [*program, "capture", "apply", "--proxy-uid", str(proxy_uid)]
    for port in proxy_ports:
        argv += ["--proxy-port", str(port)]
    for name in ANNOTATIONS:
        if name in annotations:
            argv += ["-a", f"{name}={annotations[name]}"]
    return argv
