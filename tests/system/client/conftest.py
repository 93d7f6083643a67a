"""A running controller for client-side tests: the real gRPC server with a real Redis, in front of the real Triton
server hosting the scripted TensorRT-LLM-shaped models (tests/fixtures/scripted_triton)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from certa.backends.triton.backend import TritonBackend
from certa.testing.redis_server import RedisServer
from certa_triton_local.launcher import TritonServer
from tests.system.api.conftest import settings_for, started


@pytest.fixture(scope="module")
async def certa_address(scripted_triton: TritonServer, redis_server: RedisServer) -> AsyncIterator[str]:
    """host:port of a controller whose default backend is the scripted Triton (token mode)."""
    settings = settings_for({"trtllm": f"triton://{scripted_triton.grpc_url}"}, redis_server.url)
    backends = {spec.name: TritonBackend(spec, connect_timeout_s=2.0) for spec in settings.backends}
    server = await started(settings, backends)
    yield f"127.0.0.1:{server.port}"
    await server.stop()
