"""The xDS protocol's per-stream state, sans-I/O, shared by every xDS server plait runs.

The control plane's ADS server (`plait.xds`) and the agent's SDS server (`plait.agent`)
sit side by side in the layers and may not import each other; both import this package,
which imports neither gRPC nor asyncio nor anything of plait's (the delta protocol will
reuse it too).
"""
