"""Benchmarks: `python -m bench` (`make bench`). Not part of the test suite."""
