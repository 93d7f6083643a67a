"""Observability: traces, metrics and logs, in one place so the rest of the code receives them injected."""
