"""The test node agent's list-watch loop (tests/kubenode.py): one thread per kind.

A watch made without a resourceVersion starts with every existing object as ADDED;
lightkube resumes it from the last resourceVersion when the server ends it. A broken
watch (a transport error, 410 Gone) is made again from scratch, so a handler sees objects
again and must be idempotent (an object deleted meanwhile is missed: no test needs it).
Handlers run on the watch's thread, one event at a time.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from lightkube import Client

RETRY_S = 0.5


def watch_forever(
    client: Client,
    kind: Any,
    handle: Callable[[str, Any], None],
    stop: threading.Event,
    handling: threading.Lock,
    **selectors: Any,
) -> None:
    """Feed every event of `kind` (all namespaces; `selectors` as lightkube's `watch`
    takes them) to `handle(event, obj)` until `stop` is set.

    Each event is handled holding `handling`, and only while `stop` is not set: a stopper
    sets `stop`, then takes `handling` once to know no handler runs or will run. It need
    not wait for the thread itself, which may sit in a quiet watch (lightkube re-makes a
    watch the server ended, so the loop sees `stop` only at the next event)."""
    name = getattr(kind, "__name__", str(kind))
    while not stop.is_set():
        try:
            for event, obj in client.watch(kind, namespace="*", server_timeout=3, **selectors):
                with handling:
                    if stop.is_set():
                        return
                    handle(event, obj)
        except Exception as exc:  # noqa: BLE001 - a broken watch (any transport error) is re-made
            if stop.wait(RETRY_S):
                return
            print(f"node agent: {name} watch failed ({exc}); watching again")
