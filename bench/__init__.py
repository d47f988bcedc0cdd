"""Benchmarks: ratios and CPU time per message, measured side by side in one run. Never part of `make test`."""
