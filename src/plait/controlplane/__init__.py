"""Wiring: sources → snapshot → translator → xDS server, plus the status endpoint."""
