"""What a request costs in Redis, measured with MEMORY USAGE: in flight (record, lease, journal, events) and
finished (the record with its result; the events until they expire, the journal is dropped). Run with `-s` to see the
figures."""

from __future__ import annotations

import asyncio
import uuid

import grpc
import pytest
from redis.asyncio import Redis

from certa.store.requests.port import RequestKey
from certa.testing.redis_server import RedisServer
from certa.v1 import reasoning_pb2 as pb
from certa.v1 import reasoning_pb2_grpc as pb_grpc
from certa_triton_local.launcher import TritonServer
from tests.system.state.test_replicas import LONG, QUESTION
from tests.system.state.test_store_faults import controller

pytestmark = pytest.mark.integration


async def memory_of(client: Redis, keys: list[str]) -> dict[str, int]:
    return {key.rsplit(":", 1)[1]: int(await client.memory_usage(key) or 0) for key in keys}


async def test_redis_memory_per_request_in_flight_and_finished(
    scripted_triton: TritonServer, redis_server: RedisServer
) -> None:
    server = await controller(scripted_triton, redis_server.url)
    client = Redis.from_url(redis_server.url)
    request = pb.SolveRequest(question=QUESTION, strategy=LONG, request_id=f"mem-{uuid.uuid4().hex[:6]}")
    keys = server.service.store.keys(RequestKey("default", request.request_id))  # type: ignore[attr-defined]
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            solving = asyncio.ensure_future(pb_grpc.ReasoningServiceStub(channel).Solve(request))
            await asyncio.sleep(2.0)
            in_flight = await memory_of(client, keys)
            response = await solving
        finished = await memory_of(client, keys)
    finally:
        await client.aclose()
        await server.stop()
    text_bytes = len(response.result.text.encode())
    print(
        f"\nRedis memory (MEMORY USAGE, bytes) for a {response.result.usage.path_tokens}-token Dynasor-CoT path "
        f"with {len(response.result.probes)} probes ({text_bytes} bytes of text):\n"
        f"  in flight (after 2 s): {sum(in_flight.values())} = {in_flight}\n"
        f"  finished: {sum(finished.values())} = {finished} (the record alone outlives the rest: {finished['meta']})"
    )
    assert in_flight["lease"] > 0 and finished["lease"] == 0
    assert in_flight["journal"] > 0 and finished["journal"] == 0  # a finished request is never resumed
    # Bounded by the text: the record holds the request, prompt and result; journal and events hold the text once
    # each (plus token ids and framing), so a request costs a small multiple of its text.
    assert sum(finished.values()) < 40 * text_bytes + 16_384
