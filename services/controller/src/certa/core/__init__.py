"""The pure core: types, answer handling, certainty rules and strategies.

Nothing here performs I/O or imports grpc, redis, tritonclient, httpx or opentelemetry; a test enforces it.
Strategies are generators that yield commands (`certa.core.commands`) and receive outcomes.
"""
