"""Per-tenant quotas shared by every replica: requests in flight and tokens per minute.

In flight: a sorted set of the tenant's running request ids (score: when the entry goes stale, in case a request
is never finished by any replica). Tokens per minute: a sliding window made of per-minute counters, the previous
minute weighted by how much of it still overlaps the last 60 seconds. Admission is one Lua script, so concurrent
requests on several replicas cannot overshoot the in-flight limit; tokens are added as checkpoints are written,
so a burst can exceed the token rate by what its requests generate before their next checkpoint.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from typing import Protocol

from redis.asyncio import Redis

from certa.core.errors import QuotaExceeded
from certa.store.redis_store import RedisStore

WINDOW_MS = 60_000
IN_FLIGHT_RETRY_S = 1.0
"""The wait suggested to a tenant at its in-flight limit: its requests finish at their own pace."""


class QuotaLedger(Protocol):
    async def admit(self, tenant: str, request_id: str, max_in_flight: int, tokens_per_minute: int) -> None:
        """Count the request as in flight, or raise `QuotaExceeded` with how long to wait."""

    async def release(self, tenant: str, request_id: str) -> None: ...

    async def spend(self, tenant: str, tokens: int) -> None: ...


def _window_used(now_ms: int, current: int, previous: int) -> float:
    """Tokens in the sliding minute: this minute's, plus the previous minute's share still inside the window."""
    return current + previous * (WINDOW_MS - now_ms % WINDOW_MS) / WINDOW_MS


def _window_wait_ms(now_ms: int, current: int, previous: int, limit: int) -> int:
    """How long until the sliding window holds less than `limit` tokens (0 when it already does)."""
    into = now_ms % WINDOW_MS
    if current >= limit:
        return WINDOW_MS - into + max(int(WINDOW_MS * (1 - (limit / max(current, 1)))), 0)
    if _window_used(now_ms, current, previous) < limit:
        return 0
    needed_into = WINDOW_MS * (1 - (limit - current) / previous)  # previous' weight falls below what is left
    return max(int(needed_into - into) + 1, 1)


# KEYS: running set, this minute's counter, the previous minute's counter
# ARGV: now_ms, stale_at_ms, max_in_flight, tokens_per_minute, request_id
_ADMIT = """
local now = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local known = redis.call('ZSCORE', KEYS[1], ARGV[5])
local max_in_flight = tonumber(ARGV[3])
if not known and max_in_flight > 0 and redis.call('ZCARD', KEYS[1]) >= max_in_flight then return {1, 0, 0} end
local limit = tonumber(ARGV[4])
if limit > 0 then
  local current = tonumber(redis.call('GET', KEYS[2]) or '0')
  local previous = tonumber(redis.call('GET', KEYS[3]) or '0')
  local into = now % 60000
  if current + previous * (60000 - into) / 60000 >= limit then return {2, current, previous} end
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[5])
redis.call('PEXPIREAT', KEYS[1], ARGV[2])
return {0, 0, 0}
"""


class RedisQuotaLedger:
    def __init__(self, store: RedisStore, client: Redis, stale_after_s: float) -> None:
        self._store = store
        self._redis = client
        self._stale_after_ms = int(stale_after_s * 1000)
        self._admit = client.register_script(_ADMIT)

    def _keys(self, tenant: str, now_ms: int) -> list[str]:
        base = f"{self._store.prefix}:{{tenant/{tenant}}}"
        minute = now_ms // WINDOW_MS
        return [f"{base}:running", f"{base}:tokens:{minute}", f"{base}:tokens:{minute - 1}"]

    async def admit(self, tenant: str, request_id: str, max_in_flight: int, tokens_per_minute: int) -> None:
        if not max_in_flight and not tokens_per_minute:
            return
        now = int(time.time() * 1000)
        outcome, current, previous = await self._store.call(
            "quota",
            None,
            lambda: self._admit(
                keys=self._keys(tenant, now),
                args=[now, now + self._stale_after_ms, max_in_flight, tokens_per_minute, request_id],
            ),
        )
        _raise_for(outcome, tenant, max_in_flight, tokens_per_minute, now, int(current), int(previous))

    async def release(self, tenant: str, request_id: str) -> None:
        running = self._keys(tenant, 0)[0]
        await self._store.call("quota", None, lambda: self._redis.zrem(running, request_id))

    async def spend(self, tenant: str, tokens: int) -> None:
        if tokens <= 0:
            return
        counter = self._keys(tenant, int(time.time() * 1000))[1]

        async def run() -> None:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.incrby(counter, tokens)
                pipe.pexpire(counter, 2 * WINDOW_MS)
                await pipe.execute()

        await self._store.call("quota", None, run)


class MemoryQuotaLedger:
    """The same rules in one process (with `CERTA_STORE=memory`)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._running: defaultdict[str, set[str]] = defaultdict(set)
        self._tokens: defaultdict[tuple[str, int], int] = defaultdict(int)

    async def admit(self, tenant: str, request_id: str, max_in_flight: int, tokens_per_minute: int) -> None:
        running = self._running[tenant]
        now = int(self._clock() * 1000)
        outcome, current, previous = 0, 0, 0
        if request_id not in running and max_in_flight and len(running) >= max_in_flight:
            outcome = 1
        elif tokens_per_minute:
            minute = now // WINDOW_MS
            current, previous = self._tokens[(tenant, minute)], self._tokens[(tenant, minute - 1)]
            if _window_used(now, current, previous) >= tokens_per_minute:
                outcome = 2
        _raise_for(outcome, tenant, max_in_flight, tokens_per_minute, now, current, previous)
        running.add(request_id)

    async def release(self, tenant: str, request_id: str) -> None:
        self._running[tenant].discard(request_id)

    async def spend(self, tenant: str, tokens: int) -> None:
        self._tokens[(tenant, int(self._clock() * 1000) // WINDOW_MS)] += max(tokens, 0)


def _raise_for(
    outcome: int, tenant: str, max_in_flight: int, tokens_per_minute: int, now_ms: int, current: int, previous: int
) -> None:
    if outcome == 1:
        raise QuotaExceeded(
            f"tenant {tenant!r} has {max_in_flight} requests in flight, its limit; retry when one finishes",
            retry_after_s=IN_FLIGHT_RETRY_S,
        )
    if outcome == 2:
        wait_ms = _window_wait_ms(now_ms, current, previous, tokens_per_minute)
        raise QuotaExceeded(
            f"tenant {tenant!r} generated its {tokens_per_minute} tokens per minute; retry in {wait_ms / 1000:.1f}s",
            retry_after_s=wait_ms / 1000,
        )
