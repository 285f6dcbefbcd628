"""Corpora of Parley's knowledge benchmarks (see README.md here)."""
