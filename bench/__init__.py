"""Benchmarks: `python -m bench.run` prints the tables. Never part of the test suite."""
