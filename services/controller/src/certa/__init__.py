"""Certa: a controller that stops LLM reasoning once its answer is certain."""

__version__ = "0.1.0"
