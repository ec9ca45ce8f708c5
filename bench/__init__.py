"""Benchmarks: they print figures and write JSON under bench/results; they never assert on time."""
