"""Exit codes, in one place: scripts can rely on them."""

OK = 0
CONFIG_ERRORS = 1  # analyze found errors; or `up` could not reach a ready state
USAGE = 2  # bad command line (typer's own code)
NOT_RUNNING = 3  # status/down: no mesh is running for that directory
STARTUP_FAILED = 4  # `up`: a process could not start or never got ready
