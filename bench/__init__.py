"""Benchmarks: `make bench` (python -m bench) writes JSON results under bench/results/."""
