"""Pure translation: (MeshSnapshot, Proxy) → Envoy resources. No I/O, no clock, no gRPC."""
