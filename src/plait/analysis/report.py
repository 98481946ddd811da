"""One place that turns a finding about a loaded resource into a ConfigMessage."""

from __future__ import annotations

from collections.abc import Sequence

from plait.api import Loaded
from plait.api.messages import format_path
from plait.errors import ConfigMessage, Severity


def finding(
    item: Loaded, loc: Sequence[str | int], text: str, severity: Severity = Severity.WARNING
) -> ConfigMessage:
    """A message about `item` at the YAML path `loc` (e.g. `["spec", "http", 0, "route"]`)."""
    return item.message(format_path(loc), text, severity)


def key(item: Loaded) -> str:
    """`namespace/name` of a resource, as messages name it."""
    return f"{item.resource.metadata.namespace}/{item.resource.metadata.name}"


def where(item: Loaded) -> str:
    """`namespace/name (file[document])`."""
    return f"{key(item)} ({item.source.file}[{item.source.document}])"
