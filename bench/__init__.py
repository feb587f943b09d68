"""Benchmarks that print the figures the README quotes; `python -m bench` runs them all."""
