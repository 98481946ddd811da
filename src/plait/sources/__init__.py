"""Where config and workloads come from: a directory of YAML, the local workload registry."""
