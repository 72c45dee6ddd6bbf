"""Observability: the HTTP endpoint with /metrics, /healthz and /readyz."""
