"""A real gRPC server on a free port with a real Redis, backed by the in-process scripted backend or by a real
Triton server."""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import grpc
import pytest

from certa import watched_file
from certa.backends.port import Backend
from certa.backends.triton.backend import TritonBackend
from certa.config import AuthSettings, BackendSpec, Settings, StoreSettings
from certa.observability.logs import JsonFormatter
from certa.server import CertaServer
from certa.testing.redis_server import RedisServer
from certa.testing.scripted_backend import ScriptedBackend
from certa.v1 import reasoning_pb2_grpc as pb_grpc
from certa_triton_local.launcher import TritonServer


def settings_for(
    backends: Mapping[str, str], redis_url: str = "", auth: AuthSettings | None = None, **store: object
) -> Settings:
    """Server settings for tests: a real Redis when `redis_url` is given (keys under a fresh prefix), else the
    in-process store; authentication off (the tenant from `x-certa-tenant`) unless `auth` is given."""
    store_settings = (
        StoreSettings(kind="redis", redis_url=redis_url, key_prefix=f"test-{uuid.uuid4().hex[:12]}", **store)
        if redis_url
        else StoreSettings(kind="memory", **store)
    )
    return Settings(
        listen_address="127.0.0.1:0",
        backends=tuple(BackendSpec(name, url) for name, url in backends.items()),
        max_prompt_chars=6000,
        max_token_budget=4096,
        max_deadline_s=120,
        drain_timeout_s=2,
        store=store_settings,
        auth=auth or AuthSettings(disabled=True),
    )


async def started(settings: Settings, backends: Mapping[str, Backend]) -> CertaServer:
    server = CertaServer(settings, backends)
    await server.start()
    return server


@pytest.fixture
def backend() -> ScriptedBackend:
    return ScriptedBackend()


@pytest.fixture
async def server(backend: ScriptedBackend, redis_server: RedisServer) -> AsyncIterator[CertaServer]:
    server = await started(settings_for({"scripted": "scripted://"}, redis_server.url), {"scripted": backend})
    yield server
    await server.stop()


@pytest.fixture
async def channel(server: CertaServer) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield channel


@pytest.fixture
def stub(channel: grpc.aio.Channel) -> pb_grpc.ReasoningServiceStub:
    return pb_grpc.ReasoningServiceStub(channel)


@pytest.fixture
async def triton_stub(
    scripted_triton: TritonServer, redis_server: RedisServer
) -> AsyncIterator[pb_grpc.ReasoningServiceStub]:
    """The controller in front of the real scripted Triton server (token mode) and a second backend in text mode."""
    urls = {
        "trtllm": f"triton://{scripted_triton.grpc_url}",
        "trtllm-text": f"triton://{scripted_triton.grpc_url}?mode=text",
        "nowhere": "triton://127.0.0.1:9",
    }
    settings = settings_for(urls, redis_server.url)
    backends = {spec.name: TritonBackend(spec, connect_timeout_s=2.0) for spec in settings.backends}
    server = await started(settings, backends)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield pb_grpc.ReasoningServiceStub(channel)
    await server.stop()


class Replicas:
    """Two controller replicas sharing one Redis and one tenants file (reloaded at once)."""

    def __init__(self, servers: list[CertaServer], tenants_file: Path) -> None:
        self.servers, self.tenants_file = servers, tenants_file

    def limits(self, **tenants: dict[str, object]) -> None:
        self.tenants_file.write_text(json.dumps({"default": {}, "tenants": tenants}))


@pytest.fixture
async def replicas(
    redis_server: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Replicas]:
    monkeypatch.setattr(watched_file, "RELOAD_CHECK_S", 0.0)
    tenants_file = tmp_path / "tenants.json"
    tenants_file.write_text(json.dumps({"tenants": {}}))
    base = settings_for({"scripted": "scripted://"}, redis_server.url)
    servers = []
    for _ in range(2):  # two replicas sharing one Redis (and so one key prefix)
        server = CertaServer(replace(base, tenants_file=str(tenants_file)), {"scripted": ScriptedBackend()})
        await server.start()
        servers.append(server)
    yield Replicas(servers, tenants_file)
    for server in servers:
        await server.stop()


@dataclass
class Logged:
    """Every log line written during a test, as the JSON the server writes."""

    stream: io.StringIO

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stream.getvalue().splitlines()]

    def of(self, logger: str) -> list[dict[str, Any]]:
        return [line for line in self.lines() if line["logger"] == logger]


@pytest.fixture
def logged() -> Iterator[Logged]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield Logged(stream)
    root.removeHandler(handler)
    root.setLevel(previous)
