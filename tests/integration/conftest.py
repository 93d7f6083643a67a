"""Fixtures for integration tests: one real `tritonserver` hosting the scripted TensorRT-LLM-shaped models.

`scripted_triton` starts the server once per session with `tests/fixtures/scripted_triton` and yields the
`TritonServer` (`grpc_url` is `host:port`). The models append one JSON line per cancelled request to
`scripted_cancel_log` and one per request (model, input names, forwarded headers, key values) to
`scripted_request_log`. The server forwards a `traceparent` gRPC header to the
models as a request parameter, so tests can see the controller's call metadata.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("pytriton", reason="the real tritonserver ships in the nvidia-pytriton wheel")

from certa_triton_local.launcher import TritonServer

SCRIPTED_REPOSITORY = Path(__file__).resolve().parents[1] / "fixtures" / "scripted_triton"
FORWARDED_HEADERS = "^traceparent$"


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
