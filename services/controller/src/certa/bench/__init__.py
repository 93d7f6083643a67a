"""Benchmarks that run through the real API: a controller, its backend, and questions from a dataset."""
