"""The mesh's domain: frozen values with no I/O, no gRPC, no asyncio."""
