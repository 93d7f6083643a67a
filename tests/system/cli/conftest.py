"""The CLI's tests reuse the client tests' running controller (real gRPC server, Redis and scripted Triton)."""

from tests.system.client.conftest import certa_address

__all__ = ["certa_address"]
