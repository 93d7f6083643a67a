"""Requests in the state store: the port, its Redis and in-process adapters, and the encoding of what is stored."""
