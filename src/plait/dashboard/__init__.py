"""`plait dashboard`: a web page with the live service graph, golden metrics, proxy sync
status, config errors and recent traces (server in `server`, JSON builders in `model`)."""
