"""Benchmarks, run as modules (``python -m bench.keywords``); results go to bench/results/."""
