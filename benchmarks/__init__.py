"""Benchmarks: ghz load scenarios against the real service, with baselines measured in the same
run (``python -m benchmarks.run``), and the edge latency benchmarks."""
