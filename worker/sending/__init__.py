"""Sending one request: error classification, per-identity rate, retries."""
