"""Benchmarks and validation scripts (not part of the installed package)."""
