"""Many requests at once against the real gRPC server and a real Redis, with the scripted backend in its instant form
(what `make bench-load` runs): none fails, every result is complete and stored, every generated token is on record.

Not timed: performance figures come from `make bench-load`, not from tests.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from certa_bench.load import codes, load_request, read_stored, run_wave, tokens_of

from certa.server import CertaServer
from certa.testing.redis_server import RedisServer
from certa.testing.scripted_backend import ScriptedBackend
from certa.testing.scripted_model import DEFAULT_SCRIPT
from certa.v1 import reasoning_pb2 as pb
from tests.system.api.conftest import settings_for

pytestmark = pytest.mark.integration

CONCURRENT = 200
SCRIPT = DEFAULT_SCRIPT.replace("ANSWER", "18")


async def serve(redis_url: str, backend: ScriptedBackend, **store: object) -> CertaServer:
    settings = settings_for({"instant": "scripted://"}, redis_url, **store)
    server = CertaServer(replace(settings, max_concurrent_requests=CONCURRENT + 10), {"instant": backend})
    await server.start()
    return server


@pytest.fixture
async def loaded(redis_server: RedisServer) -> AsyncIterator[tuple[CertaServer, ScriptedBackend]]:
    backend = ScriptedBackend(name="instant", record=False)
    # A pool with room to spare (a request in flight may hold more than one connection: about 230 were in use at
    # once for 200 requests); the default pool, which makes commands wait, is the next test.
    server = await serve(redis_server.url, backend, redis_pool_size=4 * CONCURRENT)
    yield server, backend
    await server.stop()


async def test_concurrent_requests_all_succeed_complete_and_stored(
    loaded: tuple[CertaServer, ScriptedBackend], redis_server: RedisServer
) -> None:
    server, backend = loaded
    run = f"load-{uuid.uuid4().hex[:6]}"
    requests = [load_request(run, i) for i in range(CONCURRENT)]
    outcomes = await run_wave([f"127.0.0.1:{server.port}"], requests, channels=4, timeout_s=240)

    assert codes(outcomes) == {"OK": CONCURRENT}, [o.details for o in outcomes if o.code != "OK"][:5]
    for outcome in outcomes:
        assert outcome.response is not None
        response, result = outcome.response, outcome.response.result
        assert (response.request_id, response.status, response.attempt) == (
            outcome.request_id,
            pb.SOLVE_STATUS_SUCCEEDED,
            1,
        )
        # Complete: the whole script, every token counted, the answer reached, every probe kept.
        assert (result.text, result.answer, result.stop_reason) == (SCRIPT, "18", pb.STOP_REASON_MODEL_FINISHED)
        assert result.usage.path_tokens == len(SCRIPT)
        assert [probe.position_tokens for probe in result.probes] == list(range(32, len(SCRIPT), 32))

    stored = await read_stored(redis_server.url, server.settings.store.key_prefix, [r.request_id for r in requests])
    for outcome in outcomes:
        record = stored[outcome.request_id]
        assert outcome.response is not None
        assert (record.status, record.attempt) == ("succeeded", 1)
        assert record.result == outcome.response.result
        # One journal entry per round: 8 chunks and 7 probes.
        assert record.journal == -(-len(SCRIPT) // 32) + len(outcome.response.result.probes)
    # Every token the backend generated is in a stored result, none counted twice.
    assert backend.tokens == sum(tokens_of(record.result) for record in stored.values())
    assert backend.calls == sum(record.journal for record in stored.values())


async def test_the_default_redis_pool_serves_every_request_the_replica_admits(redis_server: RedisServer) -> None:
    server = await serve(redis_server.url, ScriptedBackend(name="instant", record=False))
    try:
        run = f"pool-{uuid.uuid4().hex[:6]}"
        outcomes = await run_wave(
            [f"127.0.0.1:{server.port}"], [load_request(run, i) for i in range(CONCURRENT)], timeout_s=240
        )
    finally:
        await server.stop()
    assert codes(outcomes) == {"OK": CONCURRENT}, [o.details for o in outcomes if o.code != "OK"][:3]
