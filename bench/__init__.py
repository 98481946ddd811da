"""plait's benchmarks (not tests): `python -m bench.run`; see docs/benchmarks.md."""

import os

# gRPC logs a notice each time a process with gRPC threads forks (every Envoy and worker
# the bench starts); it must be set before gRPC is imported, so it is set here.
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
