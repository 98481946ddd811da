"""plait: a service mesh whose control plane speaks the Istio API to Envoy over xDS."""

import os

# `plait up` runs gRPC servers (the agents' SDS) and forks Envoys and apps from the same
# process. gRPC's fork handlers (on by default) can abort the child between fork and exec
# while gRPC threads are busy; plait never uses gRPC in a forked child, so it turns them
# off before grpc is imported (https://github.com/grpc/grpc/blob/master/doc/fork_support.md).
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

__version__ = "0.1.0"
