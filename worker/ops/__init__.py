"""Operating the worker: ``sms-worker init | status | campaign`` and campaign counters."""
