"""Fixtures for certa-triton-local tests; the SmolLM2 server itself (`triton`) is in tests/conftest.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from certa_triton_local.launcher import TritonServer
from tests.contract.triton_local.triton_grpc import Client


@pytest.fixture(scope="session")
def client(triton: TritonServer) -> Iterator[Client]:
    grpc_client = Client(triton.grpc_url)
    yield grpc_client
    grpc_client.close()
