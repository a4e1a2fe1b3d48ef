"""Benchmarks: ``make bench`` runs every part and writes figures to bench/results/."""
