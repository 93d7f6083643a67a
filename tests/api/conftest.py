"""A real gRPC server on a free port, backed by the in-process scripted backend."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest

from certa.config import BackendSpec, Settings
from certa.server import CertaServer
from certa.testing.scripted_backend import ScriptedBackend
from certa.v1 import reasoning_pb2_grpc as pb_grpc


@pytest.fixture
def backend() -> ScriptedBackend:
    return ScriptedBackend()


@pytest.fixture
async def server(backend: ScriptedBackend) -> AsyncIterator[CertaServer]:
    settings = Settings(
        listen_address="127.0.0.1:0",
        backends=(BackendSpec("scripted", "scripted://"),),
        max_prompt_chars=2000,
        max_token_budget=4096,
        max_deadline_s=120,
        drain_timeout_s=2,
    )
    server = CertaServer(settings, {"scripted": backend})
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def channel(server: CertaServer) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield channel


@pytest.fixture
def stub(channel: grpc.aio.Channel) -> pb_grpc.ReasoningServiceStub:
    return pb_grpc.ReasoningServiceStub(channel)
