"""Benchmarks: each measures a baseline in the same run and reports both figures and their ratio."""
