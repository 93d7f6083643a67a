"""Secrets planted in backend and Redis URLs never leave the process: not in a client's error, not in a stored
failure, not in a log line (captured through the server's own redacting handler), not in a span (issue 17)."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from redis.asyncio import Redis

from certa.core.errors import InvalidArgument
from certa.observability.logs import setup_logging
from certa.observability.telemetry import Telemetry
from certa.server import CertaServer, build_backends
from certa.testing.redis_server import RedisServer
from certa.v1 import reasoning_pb2 as pb
from certa.v1 import reasoning_pb2_grpc as pb_grpc
from certa_triton_local.launcher import free_port
from tests.system.api.conftest import settings_for

pytestmark = pytest.mark.integration

USER_SECRET, TOKEN_SECRET, REDIS_SECRET = "pw-in-userinfo-7f3a", "bearer-token-c41d", "redis-pw-55de"
# A token in a query string is redacted too (tests/unit/security/test_hardening.py); adapters accept no such option
# today.


@pytest.fixture
def server_log() -> Iterator[io.StringIO]:
    """The server's log handler as `certa serve` sets it up, writing to a buffer instead of stderr."""
    buffer = io.StringIO()
    setup_logging("DEBUG", "json")
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(buffer)
    yield buffer
    logging.basicConfig(force=True)


def span_strings(spans: InMemorySpanExporter) -> str:
    values: list[str] = []
    for span in spans.get_finished_spans():
        values += [str(value) for value in (span.attributes or {}).values()]
        values += [str(span.status.description or "")]
        for event in span.events:
            values += [event.name, *(str(value) for value in (event.attributes or {}).values())]
    return "\n".join(values)


async def test_no_planted_secret_reaches_a_client_a_stored_record_a_log_or_a_span(
    redis_server: RedisServer, server_log: io.StringIO, tmp_path: Path
) -> None:
    # Credentials in a URL are refused at start (certa.backends.*.options), and the refusal does not quote them.
    with pytest.raises(InvalidArgument) as refused:
        build_backends(settings_for({"remote": f"openai+http://certa:{USER_SECRET}@127.0.0.1:9/v1"}))
    assert USER_SECRET not in str(refused.value) and "remote" in str(refused.value)
    token = tmp_path / "token"
    token.write_text(TOKEN_SECRET)
    url = f"openai+http://127.0.0.1:{free_port()}/v1?api_key_file={token}"
    settings = settings_for({"remote": url}, redis_server.url)
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    telemetry = Telemetry(tracer_provider, MeterProvider())
    server = CertaServer(settings, build_backends(settings, telemetry), telemetry)
    await server.start()  # the readiness check fails on the unreachable backend, and logs why
    seen: list[str] = []
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = pb_grpc.ReasoningServiceStub(channel)
            request = pb.SolveRequest(question="Q", strategy=pb.Strategy(plain=pb.PlainCot()), request_id="leak-1")
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await stub.Solve(request)
            assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "127.0.0.1" in (raised.value.details() or "")  # the message still says where the fault is
            seen += [raised.value.details() or "", repr(raised.value.trailing_metadata())]
            described = await stub.GetSolve(pb.GetSolveRequest(request_id="leak-1"))
            assert described.status == pb.SOLVE_STATUS_FAILED and described.error
            seen.append(str(described))
    finally:
        await server.stop()
        tracer_provider.shutdown()
    client = Redis.from_url(redis_server.url)
    stored = [
        repr(await client.hgetall(key)) async for key in client.scan_iter(f"{settings.store.key_prefix}:*:meta")
    ]
    await client.aclose()
    assert stored and "BackendUnavailable" in stored[0]
    log_text = server_log.getvalue()
    assert "127.0.0.1" in log_text  # something was logged about the backend
    for secret in (USER_SECRET, TOKEN_SECRET):
        for where, text in (("client", "\n".join(seen)), ("store", "\n".join(stored)), ("log", log_text),
                            ("spans", span_strings(spans))):
            assert secret not in text, f"{secret} reached the {where}"


async def test_a_password_in_the_redis_url_is_not_in_the_error_of_an_unreachable_store(
    server_log: io.StringIO,
) -> None:
    redis_url = f"redis://default:{REDIS_SECRET}@127.0.0.1:{free_port()}/0"
    settings = settings_for({"remote": "openai+http://127.0.0.1:9/v1"}, redis_url, redis_timeout_s=0.2)
    server = CertaServer(settings, build_backends(settings))
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await pb_grpc.ReasoningServiceStub(channel).Solve(
                    pb.SolveRequest(question="Q", strategy=pb.Strategy(plain=pb.PlainCot()))
                )
    finally:
        await server.stop()
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    assert REDIS_SECRET not in (raised.value.details() or "") and REDIS_SECRET not in server_log.getvalue()
