"""Benchmarks of bsnn_jax: ``python -m benchmarks.<name>``; results in ``benchmarks/results/``."""
