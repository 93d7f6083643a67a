"""JWT keys from a JWKS URL served by a real local HTTP server: unreachable at start (not ready, UNAVAILABLE, no
crash, then ready once it answers), and a key rotation picked up without a restart."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from aiohttp import web
from grpc_health.v1 import health_pb2, health_pb2_grpc

from certa import server as server_module
from certa.api.jwks import KeysUnavailable, RemoteJwks
from certa.config import AuthSettings
from certa.server import SERVICE_NAME, CertaServer
from certa.testing.scripted_backend import ScriptedBackend
from certa.v1 import reasoning_pb2 as pb
from certa.v1 import reasoning_pb2_grpc as pb_grpc
from certa_triton_local.launcher import free_port
from tests.system.api.conftest import settings_for
from tests.tls_material import JwtIssuer, Pki

pytestmark = pytest.mark.integration

ISSUER, AUDIENCE = "https://issuer.example", "certa"
FAST = pb.Strategy(plain=pb.PlainCot())


@dataclass
class JwksServer:
    """Serves `document` at http://127.0.0.1:PORT/jwks once `start` is called; counts fetches."""

    port: int = field(default_factory=free_port)
    document: dict[str, Any] = field(default_factory=dict)
    fetches: int = 0
    tls: ssl.SSLContext | None = None
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}/jwks"

    async def _jwks(self, request: web.Request) -> web.Response:
        self.fetches += 1
        return web.json_response(self.document)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/jwks", self._jwks)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, ssl_context=self.tls).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@dataclass
class Running:
    server: CertaServer
    stub: pb_grpc.ReasoningServiceStub
    health: health_pb2_grpc.HealthStub


@pytest.fixture
async def jwks() -> AsyncIterator[JwksServer]:
    served = JwksServer()
    yield served
    await served.stop()


@pytest.fixture
async def running(jwks: JwksServer, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Running]:
    monkeypatch.setattr(server_module, "READINESS_INTERVAL_S", 0.2)
    auth = AuthSettings(jwks_url=jwks.url, jwks_refresh_s=1.0, jwt_issuer=ISSUER, jwt_audience=AUDIENCE)
    server = CertaServer(settings_for({"scripted": "scripted://"}, auth=auth), {"scripted": ScriptedBackend()})
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield Running(server, pb_grpc.ReasoningServiceStub(channel), health_pb2_grpc.HealthStub(channel))
    await server.stop()


def bearer(issuer: JwtIssuer) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {issuer.token(iss=ISSUER, aud=AUDIENCE, sub='svc', tenant='acme')}"),)


async def readiness(running: Running) -> int:
    response = await running.health.Check(health_pb2.HealthCheckRequest(service=SERVICE_NAME))
    return int(response.status)


async def eventually(check: Callable[[], Awaitable[bool]], timeout_s: float = 10.0) -> None:
    for _ in range(int(timeout_s / 0.1)):
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("condition not met in time")


async def solve_code(running: Running, issuer: JwtIssuer) -> grpc.StatusCode:
    try:
        await running.stub.Solve(pb.SolveRequest(question="Q", strategy=FAST), metadata=bearer(issuer))
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


async def test_an_unreachable_jwks_url_means_not_ready_and_unavailable_until_it_answers(
    running: Running, jwks: JwksServer
) -> None:
    issuer = JwtIssuer("k1")
    assert await readiness(running) == health_pb2.HealthCheckResponse.NOT_SERVING
    with pytest.raises(grpc.aio.AioRpcError) as unavailable:
        await running.stub.Solve(pb.SolveRequest(question="Q", strategy=FAST), metadata=bearer(issuer))
    assert unavailable.value.code() is grpc.StatusCode.UNAVAILABLE
    assert "JWKS" in (unavailable.value.details() or "") and jwks.url in (unavailable.value.details() or "")
    assert running.server.authenticator.readiness_problem is not None

    jwks.document = issuer.jwks()
    await jwks.start()

    async def ready() -> bool:
        return await readiness(running) == health_pb2.HealthCheckResponse.SERVING

    await eventually(ready)
    assert await solve_code(running, issuer) is grpc.StatusCode.OK


async def test_a_rotated_key_is_picked_up_without_a_restart(running: Running, jwks: JwksServer) -> None:
    old, new = JwtIssuer("2025-key"), JwtIssuer("2026-key")
    jwks.document = old.jwks()
    await jwks.start()

    async def ready() -> bool:
        return await readiness(running) == health_pb2.HealthCheckResponse.SERVING

    await eventually(ready)
    assert await solve_code(running, old) is grpc.StatusCode.OK

    jwks.document = new.jwks()  # the provider rotates: the old key is withdrawn
    fetched = jwks.fetches

    async def new_key_accepted() -> bool:
        return await solve_code(running, new) is grpc.StatusCode.OK

    await eventually(new_key_accepted)
    assert jwks.fetches > fetched
    assert await solve_code(running, old) is grpc.StatusCode.UNAUTHENTICATED


async def test_https_is_verified_against_the_roots_ssl_cert_file_names(
    jwks: JwksServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = Pki.create().write(tmp_path)
    jwks.tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    jwks.tls.load_cert_chain(files["server_cert"], files["server_key"])
    jwks.document = JwtIssuer("k1").jwks()
    await jwks.start()

    untrusted = RemoteJwks(jwks.url, refresh_s=300)
    await untrusted.refresh()
    await untrusted.close()
    with pytest.raises(KeysUnavailable, match=r"CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
        untrusted.current()

    monkeypatch.setenv("SSL_CERT_FILE", str(files["ca"]))
    trusted = RemoteJwks(jwks.url, refresh_s=300)
    await trusted.refresh()
    await trusted.close()
    assert [key.key_id for key in trusted.current().keys] == ["k1"]
    assert trusted.readiness_problem is None
