"""The state store's contract, checked on both adapters: a real redis-server and the in-process store."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from certa.core.errors import CorruptState, LeaseLost
from certa.store import MemoryStore, RedisStore
from certa.store.requests.codec import SCHEMA_VERSION
from certa.store.requests.port import (
    Append,
    Created,
    Existing,
    Failure,
    Finish,
    RequestKey,
    RequestRecord,
    StateStore,
    Status,
)
from certa.testing.redis_server import RedisServer

pytestmark = pytest.mark.integration

LEASE_S, STATE_TTL_S, RESULT_TTL_S = 0.5, 60.0, 600.0


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["redis", "memory"])
async def store(request: pytest.FixtureRequest, redis_server: RedisServer) -> AsyncIterator[StateStore]:
    if request.param == "memory":
        yield MemoryStore(lease_s=LEASE_S, state_ttl_s=STATE_TTL_S, result_ttl_s=RESULT_TTL_S, clock=Clock())
        return
    client = Redis.from_url(redis_server.url)
    store = RedisStore(
        client,
        prefix=f"contract-{uuid.uuid4().hex[:8]}",
        lease_s=LEASE_S,
        state_ttl_s=STATE_TTL_S,
        result_ttl_s=RESULT_TTL_S,
    )
    yield store
    await store.close()


def new_request(request_id: str = "r1", tenant: str = "acme") -> RequestRecord:
    return RequestRecord(
        key=RequestKey(tenant, request_id),
        fingerprint="f" * 64,
        request=b"\x0a\x01q",
        prompt="prompt",
        strategy="dynasor-cot",
        backend="b",
        model="m",
        created_at=1.0,
        deadline_at=2.0,
    )


async def expire_lease(store: StateStore) -> None:
    """Let the lease run out: real time for Redis (it expires keys itself), a clock step for memory."""
    if isinstance(store, MemoryStore):
        store._clock.now += LEASE_S + 0.1  # type: ignore[attr-defined]
        return
    await asyncio.sleep(LEASE_S + 0.2)


async def test_create_is_atomic_and_a_second_create_sees_the_first(store: StateStore) -> None:
    created = await store.create(new_request(), "replica-a")
    assert isinstance(created, Created)
    assert (created.request.status, created.request.owner, created.request.attempt) == (Status.RUNNING, "replica-a", 1)
    again = await store.create(new_request(), "replica-b")
    assert isinstance(again, Existing) and again.request.owner == "replica-a"


async def test_writes_are_fenced_by_the_lease_and_applied_once(store: StateStore) -> None:
    key = new_request().key
    await store.create(new_request(), "replica-a")
    with pytest.raises(LeaseLost):
        await store.append(key, "replica-b", Append(write=1, journal=[b"x"]))
    assert not await store.append(key, "replica-a", Append(write=1, journal=[b"j1"], events=[b"e1"], summary=b"s1"))
    assert not await store.append(key, "replica-a", Append(write=1, journal=[b"j1"], events=[b"e1"]))  # a retry
    assert [entry.event for entry in await store.events(key, "")] == [b"e1"]
    with pytest.raises(CorruptState, match="write"):
        await store.append(key, "replica-a", Append(write=5, journal=[b"j5"]))
    assert (await store.read(key)).summary == b"s1"  # type: ignore[union-attr]


async def test_cancel_flag_reaches_the_owner_at_its_next_write(store: StateStore) -> None:
    key = new_request().key
    await store.create(new_request(), "replica-a")
    assert await store.request_cancel(key) is Status.RUNNING
    assert await store.append(key, "replica-a", Append(write=1, journal=[b"j1"]))
    assert await store.renew(key, "replica-a")
    assert await store.request_cancel(RequestKey("acme", "unknown")) is None


async def test_an_expired_lease_is_claimed_once_and_uncheckpointed_events_are_dropped(store: StateStore) -> None:
    key = new_request().key
    await store.create(new_request(), "replica-a")
    await store.append(key, "replica-a", Append(write=1, journal=[b"j1"], events=[b"e1", b"e2"], checkpointed_events=1))
    await store.append(key, "replica-a", Append(write=2, events=[b"e3"]))  # text of a call still running
    assert await store.claim(key, "replica-b") is None  # the lease is still valid
    await expire_lease(store)
    assert key in await store.orphans(10)
    claim = await store.claim(key, "replica-b")
    assert claim is not None
    assert (claim.request.attempt, claim.request.owner, list(claim.journal), claim.writes) == (
        2,
        "replica-b",
        [b"j1"],
        2,
    )
    assert [entry.event for entry in await store.events(key, "")] == [b"e1"]
    assert await store.claim(key, "replica-c") is None
    with pytest.raises(LeaseLost):
        await store.append(key, "replica-a", Append(write=3, journal=[b"late"]))


async def test_finish_ends_the_stream_keeps_the_result_and_frees_the_lease(store: StateStore) -> None:
    key = new_request().key
    await store.create(new_request(), "replica-a")
    await store.append(key, "replica-a", Append(write=1, events=[b"e1"]))
    await store.finish(
        key,
        "replica-a",
        Finish(
            write=2,
            status=Status.FAILED,
            summary=b"partial",
            failure=Failure("BackendUnavailable", "backend 'b': down"),
        ),
    )
    await store.finish(key, "replica-a", Finish(write=2, status=Status.FAILED, summary=b"partial"))  # a retry
    stored = await store.read(key)
    assert stored is not None
    assert (stored.status, stored.owner, stored.summary) == (Status.FAILED, "", b"partial")
    assert stored.failure == Failure("BackendUnavailable", "backend 'b': down")
    entries = await store.events(key, "")
    assert [entry.is_end for entry in entries] == [False, True]
    assert await store.events(key, entries[0].cursor) == entries[1:]
    assert await store.claim(key, "replica-b") is None
    with pytest.raises(LeaseLost):
        await store.renew(key, "replica-a")


async def set_fields(store: StateStore, key: RequestKey, fields: dict[bytes, bytes]) -> None:
    """Write record fields as another release would have (the memory store's dictionary, or the Redis hash)."""
    if isinstance(store, MemoryStore):
        store._entries[key].fields.update(fields)  # type: ignore[attr-defined]
        return
    assert isinstance(store, RedisStore)
    await store.client.hset(store.keys(key)[0], mapping=fields)  # type: ignore[arg-type]


async def test_a_record_of_the_previous_schema_takes_this_ones_version_with_the_first_result_written(
    store: StateStore,
) -> None:
    key = new_request().key
    await store.create(new_request(), "replica-a")
    assert (await store.read(key)).schema == SCHEMA_VERSION == "3"  # type: ignore[union-attr]
    await set_fields(store, key, {b"v": b"2", b"summary": b"a schema 2 result"})  # left by an older replica
    assert (await store.read(key)).schema == "2"  # type: ignore[union-attr]
    await store.append(key, "replica-a", Append(write=1, journal=[b"j1"], events=[b"e1"]))  # no result: still 2
    assert (await store.read(key)).schema == "2"  # type: ignore[union-attr]
    await store.append(key, "replica-a", Append(write=2, journal=[b"j2"], summary=b"s2"))
    stored = await store.read(key)
    assert stored is not None and (stored.schema, stored.summary) == (SCHEMA_VERSION, b"s2")
    await set_fields(store, key, {b"v": b"2"})
    await store.finish(key, "replica-a", Finish(write=3, status=Status.SUCCEEDED, summary=b"result"))
    stored = await store.read(key)
    assert stored is not None and (stored.schema, stored.summary) == (SCHEMA_VERSION, b"result")


async def test_released_requests_are_claimable_at_once(store: StateStore) -> None:
    key = new_request().key
    await store.create(new_request(), "replica-a")
    await store.release(key, "replica-b")  # not the owner: nothing happens
    assert await store.claim(key, "replica-b") is None
    await store.release(key, "replica-a")
    assert await store.claim(key, "replica-b") is not None


async def test_tenants_do_not_share_request_ids(store: StateStore) -> None:
    await store.create(new_request(tenant="acme"), "replica-a")
    assert await store.read(RequestKey("globex", "r1")) is None
    assert isinstance(await store.create(new_request(tenant="globex"), "replica-a"), Created)


async def test_redis_sets_a_ttl_on_every_key_results_outliving_the_journal(redis_server: RedisServer) -> None:
    client = Redis.from_url(redis_server.url)
    prefix = f"ttl-{uuid.uuid4().hex[:8]}"
    store = RedisStore(client, prefix=prefix, lease_s=5, state_ttl_s=STATE_TTL_S, result_ttl_s=RESULT_TTL_S)
    key = new_request().key
    await store.create(new_request(), "replica-a")
    await store.append(key, "replica-a", Append(write=1, journal=[b"j1"], events=[b"e1"], checkpointed_events=1))
    running = {name.decode(): await client.pttl(name) for name in await client.keys(f"{prefix}:*")}
    assert set(running) == {*store.keys(key), f"{prefix}:inflight"}
    assert 0 < running[f"{prefix}:inflight"] <= STATE_TTL_S * 1000  # the sweep's index, shared by all requests
    meta, lease, journal, events = store.keys(key)
    assert 0 < running[lease] <= 5_000
    assert all(0 < running[name] <= STATE_TTL_S * 1000 for name in (meta, journal, events))
    await store.finish(key, "replica-a", Finish(write=2, status=Status.SUCCEEDED, summary=b"result"))
    finished = {name.decode(): await client.pttl(name) for name in await client.keys(f"{prefix}:*")}
    assert lease not in finished
    assert STATE_TTL_S * 1000 < finished[meta] <= RESULT_TTL_S * 1000
    assert 0 < finished[events] <= STATE_TTL_S * 1000
    assert journal not in finished and await client.hget(meta, "journal_entries") == b"1"  # dropped, length kept
    assert await client.zscore(f"{prefix}:inflight", str(key)) is None
    await store.close()


async def test_foreign_data_under_a_key_is_an_error_naming_the_key(redis_server: RedisServer) -> None:
    client = Redis.from_url(redis_server.url)
    store = RedisStore(client, prefix=f"corrupt-{uuid.uuid4().hex[:8]}")
    key = RequestKey("acme", "foreign")
    meta = store.keys(key)[0]
    await client.hset(meta, mapping={"owner": "someone else's app"})
    with pytest.raises(CorruptState, match=meta.replace("{", r"\{").replace("}", r"\}")):
        await store.read(key)
    await client.delete(meta)
    await client.set(meta, "a string, not a hash")
    with pytest.raises(CorruptState, match="WRONGTYPE"):
        await store.read(key)
    await store.close()


async def test_reopen_turns_one_failed_attempt_into_a_fresh_running_one(store: StateStore) -> None:
    key = new_request().key
    await store.create(new_request(), "replica-a")
    assert not await store.reopen(key, 1, 50.0)  # running, not failed
    await store.append(key, "replica-a", Append(write=1, journal=[b"j1"], events=[b"e1"], summary=b"partial"))
    failure = Failure("BackendUnavailable", "cannot reach the backend")
    await store.finish(key, "replica-a", Finish(write=2, status=Status.FAILED, summary=b"partial", failure=failure))
    assert not await store.reopen(key, 2, 50.0)  # another attempt than the one that failed
    assert await store.reopen(key, 1, 50.0)
    assert not await store.reopen(key, 1, 50.0)  # a concurrent retry reopens it once
    reopened = await store.read(key)
    assert reopened is not None
    assert (reopened.status, reopened.failure, reopened.summary, reopened.owner) == (Status.RUNNING, None, b"", "")
    assert reopened.record.deadline_at == 50.0
    assert await store.events(key, "") == []
    claim = await store.claim(key, "replica-b")
    assert claim is not None and claim.request.attempt == 2 and list(claim.journal) == []
    await store.append(key, "replica-b", Append(write=3, journal=[b"j1"], events=[b"again"]))
    assert [entry.event for entry in await store.events(key, "")] == [b"again"]


async def test_a_renewal_after_a_write_refreshes_only_the_sweep_index(redis_server: RedisServer) -> None:
    client = Redis.from_url(redis_server.url)
    prefix = f"renew-{uuid.uuid4().hex[:8]}"
    store = RedisStore(client, prefix=prefix, lease_s=5, state_ttl_s=STATE_TTL_S, result_ttl_s=RESULT_TTL_S)
    key = new_request().key
    index, lease = f"{prefix}:inflight", store.keys(key)[1]
    await store.create(new_request(), "replica-a")
    await client.zadd(index, {str(key): 0})  # gone stale: a sweep would take the request for an orphan
    await client.pexpire(lease, 1_000)
    assert await store.renew(key, "replica-a", lease_extended=True) is False
    assert (await client.zscore(index, str(key)) or 0) > time.time() * 1000
    assert 0 < await client.pttl(lease) <= 1_000  # the write before it extended the lease: left alone
    await store.request_cancel(key)
    assert await store.renew(key, "replica-a") is True  # a plain renewal extends the lease and reads the flag
    assert 1_000 < await client.pttl(lease) <= 5_000
    await store.close()
