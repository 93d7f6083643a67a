"""Fixtures for certa-triton-local: the SmolLM2 GGUF (from its PyPI wheel) and one real tritonserver per session.

The `integration` marker is registered in the repository's pytest.ini.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from certa_triton_local.launcher import TritonServer, serve
from certa_triton_local.repository import EngineOptions, write_repository
from certa_triton_local.weights import ensure_model
from tests.triton_local.triton_grpc import Client

TEST_MODEL = "smollm2-135m"


@pytest.fixture(scope="session")
def smollm2_gguf() -> Path:
    return ensure_model(TEST_MODEL, progress=print)


@pytest.fixture(scope="session")
def triton(tmp_path_factory: pytest.TempPathFactory, smollm2_gguf: Path) -> Iterator[TritonServer]:
    repository = write_repository(
        tmp_path_factory.mktemp("repository") / "models",
        smollm2_gguf,
        TEST_MODEL,
        EngineOptions(kv_cache_cells=8192, max_sequences=8, threads=2),
    )
    log = tmp_path_factory.mktemp("triton-log") / "tritonserver.log"
    with serve(repository, log_path=log) as server:
        yield server


@pytest.fixture(scope="session")
def client(triton: TritonServer) -> Iterator[Client]:
    grpc_client = Client(triton.grpc_url)
    yield grpc_client
    grpc_client.close()
