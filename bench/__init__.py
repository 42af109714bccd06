"""Benchmarks: ``python -m bench`` runs them all and prints a table; each module also runs
on its own (``python -m bench.keywords``). Results go to bench/results/."""
