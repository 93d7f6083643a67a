"""Commands sent in batches (`certa.store.redis_batch`) against a real redis-server: commands issued together share
one pipeline, each keeps its own reply or error, and a connection fault reaches every caller of its batch."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from redis import exceptions as redis_errors
from redis.asyncio import Redis

from certa.store import RedisStore
from certa.store.redis_batch import CommandBatcher
from certa.store.requests.port import Append, Created, RequestKey, RequestRecord
from certa.testing.redis_server import RedisServer

pytestmark = pytest.mark.integration


class CountingRedis(Redis):
    """A real client that counts the pipelines it opens."""

    pipelines = 0

    def pipeline(self, *args: Any, **kwargs: Any) -> Any:
        self.pipelines += 1
        return super().pipeline(*args, **kwargs)


async def test_commands_issued_together_share_one_pipeline_each_with_its_reply(redis_server: RedisServer) -> None:
    client = CountingRedis.from_url(redis_server.url)
    batcher = CommandBatcher(client)
    key = f"batch-{uuid.uuid4().hex}"
    try:
        replies = await asyncio.gather(*(batcher.execute("INCR", key) for _ in range(20)))
        assert sorted(replies) == list(range(1, 21))
        assert client.pipelines == 1
        assert await batcher.execute("GET", key) == b"20"
        assert client.pipelines == 2
    finally:
        await client.aclose()


async def test_a_command_redis_refuses_fails_only_its_caller(redis_server: RedisServer) -> None:
    client = Redis.from_url(redis_server.url)
    batcher = CommandBatcher(client)
    text, counter = f"text-{uuid.uuid4().hex}", f"counter-{uuid.uuid4().hex}"
    try:
        await client.set(text, "not a number")
        results = await asyncio.gather(
            batcher.execute("INCR", counter), batcher.execute("INCR", text), batcher.execute("INCR", counter),
            return_exceptions=True,
        )
        assert results[0] == 1 and results[2] == 2
        assert isinstance(results[1], redis_errors.ResponseError)
    finally:
        await client.aclose()


async def test_a_connection_fault_reaches_every_caller_of_the_batch(fresh_redis: RedisServer) -> None:
    client = Redis.from_url(fresh_redis.url)
    batcher = CommandBatcher(client)
    try:
        assert await batcher.execute("PING") is True
        fresh_redis.stop()
        results = await asyncio.gather(*(batcher.execute("PING") for _ in range(3)), return_exceptions=True)
        assert all(isinstance(result, redis_errors.ConnectionError) for result in results), results
    finally:
        await client.aclose()


async def test_the_store_loads_its_scripts_again_when_redis_lost_them(redis_server: RedisServer) -> None:
    store = RedisStore(Redis.from_url(redis_server.url), prefix=f"t{uuid.uuid4().hex[:8]}")
    key = RequestKey("default", "r1")
    try:
        created = await store.create(
            RequestRecord(key, "fp", b"{}", "prompt", "dynasor_cot", "b", "m", 0.0, 1e12), "replica-a"
        )
        assert isinstance(created, Created)
        await store.client.script_flush()
        assert await store.append(key, "replica-a", Append(write=1, journal=[b"{}"], events=[b"e"])) is False
        assert await store.client.llen(store.keys(key)[2]) == 1
    finally:
        await store.close()
