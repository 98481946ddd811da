"""Exit codes, in one place: scripts can rely on them."""

OK = 0
CONFIG_ERRORS = 1  # analyze found errors; or `up` could not reach a ready state
USAGE = 2  # bad command line (typer's own code)
NOT_RUNNING = 3  # status, down, proxy-status, proxy-config: no mesh runs for that directory
# (with --kubeconfig: no control plane found in the cluster)
STARTUP_FAILED = 4  # `up`: a process could not start or never got ready
NOT_SYNCED = 5  # proxy-status: some proxy is NACK, STALE, disconnected or of unknown state
PROXY_UNREACHABLE = 6  # proxy-config: the proxy's Envoy admin interface cannot be read
CAPTURE_FAILED = 7  # capture apply/remove: iptables is missing or refused the rules
FORBIDDEN = 8  # with --kubeconfig: the API server refused (authentication or RBAC)
