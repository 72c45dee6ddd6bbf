"""The three AWS clients the worker uses, opened once per process."""
