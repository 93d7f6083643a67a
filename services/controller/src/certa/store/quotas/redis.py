"""Quotas in the store's Redis: admission is one Lua script, so replicas cannot overshoot the in-flight limit."""

from __future__ import annotations

import time

from redis.asyncio import Redis

from certa.store.quotas.port import WINDOW_MS, raise_for
from certa.store.requests.redis import RedisStore

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
        raise_for(outcome, tenant, max_in_flight, tokens_per_minute, now, int(current), int(previous))

    async def release(self, tenant: str, request_id: str) -> None:
        running = self._keys(tenant, 0)[0]
        await self._store.command("quota", "ZREM", running, request_id)

    async def spend(self, tenant: str, tokens: int) -> None:
        if tokens <= 0:
            return
        counter = self._keys(tenant, int(time.time() * 1000))[1]
        await self._store.commands("quota", ("INCRBY", counter, tokens), ("PEXPIRE", counter, 2 * WINDOW_MS))
