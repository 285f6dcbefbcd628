"""Parley's benchmarks: speed targets are measured here, side by side with a raw baseline.

Run them with `make bench BENCH_ARGS="..."` (which starts the test services) or
`python -m bench ...`; see docs/performance.md for the commands and the recorded results.
"""
