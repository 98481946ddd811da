"""Translation tests: every proxy config they translate is checked for consistency."""

from consistencykit import checked_configs  # noqa: F401  (autouse fixture)
