"""The budget pools' contract, checked on both adapters: a real redis-server and the in-process pools.

"Replicas" are two adapters on the same Redis (two clients, one key prefix), or the same in-process pools. Pools
refill at 0.001 samples per second, so the real seconds a Redis test takes do not move the levels it asserts.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest
from redis.asyncio import Redis

from certa.core.budget_pool import STALE_S, PoolPolicy, RequestUsage, WaveRequest, pool_score
from certa.core.errors import CorruptState, InvalidArgument, StoreUnavailable
from certa.store import MemoryStore, RedisStore
from certa.store.factory import build_budget_pools
from certa.store.pools.memory import MemoryBudgetPools
from certa.store.pools.port import BudgetPools
from certa.store.pools.redis import RedisBudgetPools
from certa.testing.redis_server import RedisServer

pytestmark = pytest.mark.integration

SLOW = PoolPolicy(samples_per_second=0.001, burst=8, exploration=0.1)


def wave(request_id: str, samples: int = 4, uncertainty: float = 0.5, drawn: int = 4, **kw: bool) -> WaveRequest:
    return WaveRequest(request_id, samples, drawn, uncertainty, **kw)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Deployment:
    """Builds replicas sharing one set of pools; `advance` lets time pass (a clock step for memory)."""

    kind: str
    redis_url: str = ""
    prefix: str = ""
    clock: Clock = field(default_factory=Clock)
    stores: list[RedisStore] = field(default_factory=list)
    memory: dict[float, MemoryBudgetPools] = field(default_factory=dict)

    def replicas(self, stale_s: float = STALE_S) -> tuple[BudgetPools, BudgetPools]:
        if self.kind == "memory":
            pools = self.memory.setdefault(stale_s, MemoryBudgetPools(clock=self.clock, stale_s=stale_s))
            return pools, pools
        made = []
        for _ in range(2):
            store = RedisStore(Redis.from_url(self.redis_url), prefix=self.prefix)
            self.stores.append(store)
            made.append(RedisBudgetPools(store, stale_s=stale_s))
        return made[0], made[1]

    async def advance(self, seconds: float) -> None:
        if self.kind == "memory":
            self.clock.now += seconds
        else:
            await asyncio.sleep(seconds)


@pytest.fixture(params=["redis", "memory"])
async def deployment(request: pytest.FixtureRequest, redis_server: RedisServer) -> AsyncIterator[Deployment]:
    made = Deployment(request.param, redis_server.url, f"pools-{uuid.uuid4().hex[:8]}")
    yield made
    for store in made.stores:
        await store.close()


async def test_the_most_uncertain_waiter_gets_the_wave_whoever_asked_first(deployment: Deployment) -> None:
    a, b = deployment.replicas()
    first = await a.acquire("acme", "p", SLOW, wave("m", samples=4, drawn=0, mandatory=True))
    assert (first.granted, first.retry_after_s, first.spent_samples) == (4, 0.0, 4)
    assert first.level == pytest.approx(4.0, abs=0.01)
    sure = await a.acquire("acme", "p", SLOW, wave("sure", samples=5, uncertainty=0.1))
    assert (sure.granted, sure.retry_after_s) == (0, 1.0)  # needs 5, the level is 4: wait (clamped)
    unsure = await b.acquire("acme", "p", SLOW, wave("unsure", samples=4, uncertainty=0.9))
    assert (unsure.granted, unsure.spent_samples) == (4, 8)
    assert unsure.level == pytest.approx(0.0, abs=0.01)
    stats = await b.stats("acme", "p", SLOW)
    assert [request_id for request_id, _ in stats.waiting] == ["sure"]
    assert stats.waiting[0][1] == pytest.approx(pool_score(0.1, 4, 8, 0.1))


async def test_ties_go_to_the_earlier_waiter_and_better_ranked_waves_are_reserved(deployment: Deployment) -> None:
    a, b = deployment.replicas()
    await a.acquire("acme", "p", SLOW, wave("m", samples=4, drawn=0, mandatory=True))  # level 4
    assert (await a.acquire("acme", "p", SLOW, wave("early", samples=5))).granted == 0
    late = await b.acquire("acme", "p", SLOW, wave("late", samples=4))  # fits alone, but ranked behind "early"
    assert late.granted == 0 and late.retry_after_s == 1.0
    stats = await a.stats("acme", "p", SLOW)
    assert [request_id for request_id, _ in stats.waiting] == ["early", "late"]
    await a.withdraw("acme", "p", "early")
    await b.withdraw("acme", "p", "early")  # idempotent, from any replica
    late = await b.acquire("acme", "p", SLOW, wave("late", samples=4))
    assert late.granted == 4 and late.level == pytest.approx(0.0, abs=0.01)
    assert (await a.stats("acme", "p", SLOW)).waiting == ()


async def test_pools_are_per_tenant_and_name_and_start_full(deployment: Deployment) -> None:
    a, b = deployment.replicas()
    await a.acquire("acme", "p", SLOW, wave("m", samples=8, drawn=0, mandatory=True))
    assert (await b.acquire("acme", "q", SLOW, wave("r", samples=8))).granted == 8
    assert (await b.acquire("globex", "p", SLOW, wave("r", samples=8))).granted == 8
    assert (await b.stats("", "fresh", SLOW)).level == 8.0  # the default tenant
    for tenant, pool in [("acme", "a/b"), ("acme", ""), ("bad tenant", "p")]:
        with pytest.raises(InvalidArgument):
            await a.acquire(tenant, pool, SLOW, wave("r"))


async def test_record_adds_tokens_to_the_pool_and_the_request(deployment: Deployment) -> None:
    a, b = deployment.replicas()
    await a.acquire("acme", "p", SLOW, wave("r1", samples=3, drawn=0, mandatory=True))
    await b.acquire("acme", "p", SLOW, wave("r1", samples=2, drawn=3))
    await a.record("acme", "p", "r1", 120)
    await b.record("acme", "p", "r1", 30)
    await b.record("acme", "p", "r2", 7)
    await b.record("acme", "p", "r2", 0)
    stats = await a.stats("acme", "p", SLOW)
    assert (stats.spent_samples, stats.spent_tokens) == (5, 157)
    assert stats.level == pytest.approx(3.0, abs=0.01)
    assert await b.usage("acme", "p", "r1") == RequestUsage(samples=5, tokens=150)
    assert await a.usage("acme", "p", "r2") == RequestUsage(samples=0, tokens=7)
    assert await a.usage("acme", "p", "nobody") == RequestUsage()
    await a.record("acme", "new", "r3", 10)  # a pool never acquired from: counted, and still full
    stats = await b.stats("acme", "new", SLOW)
    assert (stats.level, stats.spent_samples, stats.spent_tokens) == (8.0, 0, 10)


async def test_a_waiter_that_stops_asking_is_dropped(deployment: Deployment) -> None:
    a, b = deployment.replicas(stale_s=0.3)
    await a.acquire("acme", "p", SLOW, wave("m", samples=4, drawn=0, mandatory=True))
    assert (await a.acquire("acme", "p", SLOW, wave("gone", samples=5, uncertainty=0.9))).granted == 0
    assert (await b.acquire("acme", "p", SLOW, wave("here", samples=4, uncertainty=0.1))).granted == 0
    await deployment.advance(0.5)
    assert [request_id for request_id, _ in (await b.stats("acme", "p", SLOW)).waiting] == []
    assert (await b.acquire("acme", "p", SLOW, wave("here", samples=4, uncertainty=0.1))).granted == 4


async def test_memory_pools_refill_and_vanish_when_idle() -> None:
    clock = Clock()
    pools = MemoryBudgetPools(clock=clock)
    policy = PoolPolicy(samples_per_second=2.0, burst=8)
    await pools.acquire("acme", "p", policy, wave("m", samples=8, drawn=0, mandatory=True))
    clock.now += 1.0
    assert (await pools.stats("acme", "p", policy)).level == 2.0
    await pools.record("acme", "p", "m", 50)
    clock.now += policy.ttl_s + 1
    stats = await pools.stats("acme", "p", policy)
    assert (stats.level, stats.spent_samples, stats.spent_tokens) == (8.0, 0, 0)


async def test_redis_sets_a_ttl_on_every_key_and_a_vanished_pool_starts_full(redis_server: RedisServer) -> None:
    client = Redis.from_url(redis_server.url)
    store = RedisStore(client, prefix=f"pool-ttl-{uuid.uuid4().hex[:8]}")
    pools = build_budget_pools(store)
    assert isinstance(pools, RedisBudgetPools)
    assert isinstance(build_budget_pools(MemoryStore()), MemoryBudgetPools)
    await pools.acquire("acme", "p", SLOW, wave("m", samples=6, drawn=0, mandatory=True))
    await pools.acquire("acme", "p", SLOW, wave("w", samples=4))  # waits
    await pools.record("acme", "p", "m", 10)
    keys = pools.keys("acme", "p")
    assert keys == [f"{store.prefix}:pool:{{acme/p}}:{name}" for name in ("state", "waiting", "requests")]
    ttl_ms = SLOW.ttl_s * 1000
    assert ttl_ms == 16_000_000  # 2 * burst / rate beats the one-hour floor
    ttls = [await client.pttl(name) for name in keys]
    assert all(ttl_ms - 60_000 < ttl <= ttl_ms for ttl in ttls), ttls
    fast = PoolPolicy(samples_per_second=100.0, burst=8)
    await pools.acquire("acme", "fast", fast, wave("m", samples=1, drawn=0, mandatory=True))
    await pools.record("acme", "fast", "m", 10)
    for name in (pools.keys("acme", "fast")[0], pools.keys("acme", "fast")[2]):
        assert 3_540_000 < await client.pttl(name) <= 3_600_000
    await client.delete(*keys)  # what expiry does to an idle pool
    assert (await pools.stats("acme", "p", SLOW)).level == 8.0
    await store.close()


async def test_foreign_data_under_a_pool_key_is_an_error_naming_it(redis_server: RedisServer) -> None:
    client = Redis.from_url(redis_server.url)
    pools = RedisBudgetPools(RedisStore(client, prefix=f"pool-corrupt-{uuid.uuid4().hex[:8]}"))
    state = pools.keys("acme", "p")[0]
    await client.set(state, "a string, not a hash")
    with pytest.raises(CorruptState, match=re.escape(state)):
        await pools.acquire("acme", "p", SLOW, wave("r"))
    await client.aclose()


async def test_redis_down_is_store_unavailable(fresh_redis: RedisServer) -> None:
    store = RedisStore(Redis.from_url(fresh_redis.url, socket_connect_timeout=1.0), prefix="down")
    pools = RedisBudgetPools(store)
    assert (await pools.acquire("acme", "p", SLOW, wave("r", samples=2))).granted == 2
    fresh_redis.kill()
    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: pools.acquire("acme", "p", SLOW, wave("r", samples=2)),
        lambda: pools.withdraw("acme", "p", "r"),
        lambda: pools.record("acme", "p", "r", 5),
        lambda: pools.stats("acme", "p", SLOW),
        lambda: pools.usage("acme", "p", "r"),
    ]
    for call in calls:
        with pytest.raises(StoreUnavailable):
            await call()
    await store.close()
