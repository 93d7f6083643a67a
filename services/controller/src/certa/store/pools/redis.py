"""Budget pools in the store's Redis: each decision is one Lua script on the server's clock, so replicas agree."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar, cast

from redis import exceptions as redis_errors

from certa.core import budget_pool as model
from certa.core.budget_pool import (
    MIN_TTL_S,
    STALE_S,
    BucketState,
    PoolDecision,
    PoolPolicy,
    PoolStats,
    RequestUsage,
    Waiter,
    WaveRequest,
)
from certa.core.errors import CorruptState
from certa.store.pools.port import check_request, checked_names
from certa.store.requests.redis import RedisStore

T = TypeVar("T")

# KEYS: state, waiting, requests
# ARGV: samples_per_second, burst, exploration, stale_s, ttl_ms, request_id, samples, drawn, uncertainty, mandatory
# Returns {granted, retry_after_s, level, spent_samples}; floats as strings (Redis truncates Lua numbers).
_ACQUIRE = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local rate, burst, exploration = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local stale, ttl, id = tonumber(ARGV[4]), ARGV[5], ARGV[6]
local samples, drawn, uncertainty = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
local function fmt(x) return string.format('%.17g', x) end
local function touch()
  for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ttl) end
end

local stored = redis.call('HMGET', KEYS[1], 'level', 'updated', 'spent_samples')
local level, spent = burst, tonumber(stored[3] or '0')
if stored[1] then
  level = math.min(burst, tonumber(stored[1]) + math.max(0, now - tonumber(stored[2])) * rate)
end

local waiters, me = {}, nil
local raw = redis.call('HGETALL', KEYS[2])
for i = 1, #raw, 2 do
  local f = {}
  for word in string.gmatch(raw[i + 1], '%S+') do f[#f + 1] = tonumber(word) end
  if now - f[5] > stale then
    redis.call('HDEL', KEYS[2], raw[i])
  else
    local w = {id = raw[i], samples = f[1], drawn = f[2], u = f[3], first = f[4]}
    if raw[i] == id then me = w else waiters[#waiters + 1] = w end
  end
end

local function save()
  redis.call('HSET', KEYS[1], 'level', fmt(level), 'updated', fmt(now), 'spent_samples',
    string.format('%d', spent), 'ttl_ms', ttl)
end
local function grant()
  level = level - samples
  spent = spent + samples
  redis.call('HINCRBY', KEYS[3], 's:' .. id, samples)
  save()
  touch()
  return {samples, '0', fmt(level), spent}
end

if ARGV[10] == '1' then return grant() end

me = {id = id, samples = samples, drawn = drawn, u = uncertainty, first = me and me.first or now}
waiters[#waiters + 1] = me
local log_t = math.log(math.max(spent, 2))
for _, w in ipairs(waiters) do w.score = w.u + exploration * math.sqrt(2 * log_t / math.max(w.drawn, 1)) end
table.sort(waiters, function(a, b)
  if a.score ~= b.score then return a.score > b.score end
  if a.first ~= b.first then return a.first < b.first end
  return a.id < b.id
end)
local need = 0
for _, w in ipairs(waiters) do
  need = need + w.samples
  if w.id == id then break end
end
if need <= level then
  redis.call('HDEL', KEYS[2], id)
  return grant()
end
redis.call('HSET', KEYS[2], id, ARGV[7] .. ' ' .. ARGV[8] .. ' ' .. ARGV[9] .. ' ' .. fmt(me.first) .. ' ' .. fmt(now))
save()
touch()
local retry = math.min(1.0, math.max(0.05, (need - level) / rate))
return {0, fmt(retry), fmt(level), spent}
"""

# KEYS: state, waiting, requests; ARGV: request_id, tokens, ttl_ms for a pool never acquired from
_RECORD = """
local ttl = redis.call('HGET', KEYS[1], 'ttl_ms') or ARGV[3]
redis.call('HINCRBY', KEYS[1], 'spent_tokens', ARGV[2])
redis.call('HINCRBY', KEYS[3], 't:' .. ARGV[1], ARGV[2])
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ttl) end
"""

# KEYS: state, waiting. Returns {now, level, updated, spent_samples, spent_tokens, waiting (flat hash)}.
_STATS = """
local clock = redis.call('TIME')
local stored = redis.call('HMGET', KEYS[1], 'level', 'updated', 'spent_samples', 'spent_tokens')
return {clock[1] .. '.' .. string.format('%06d', tonumber(clock[2])), stored[1], stored[2], stored[3], stored[4],
  redis.call('HGETALL', KEYS[2])}
"""


class RedisBudgetPools:
    """Pools in the store's Redis, under its key prefix; `stale_s` is injectable for tests."""

    def __init__(self, store: RedisStore, stale_s: float = STALE_S) -> None:
        self._store = store
        self._redis = store.client
        self._stale_s = stale_s
        self._acquire = self._redis.register_script(_ACQUIRE)
        self._record = self._redis.register_script(_RECORD)
        self._stats = self._redis.register_script(_STATS)

    def keys(self, tenant: str, pool: str) -> list[str]:
        """The pool's state, waiting and requests keys."""
        base = f"{self._store.prefix}:pool:{{{tenant}/{pool}}}"
        return [f"{base}:state", f"{base}:waiting", f"{base}:requests"]

    async def _call(self, operation: str, keys: list[str], action: Callable[[], Awaitable[T]]) -> T:
        """The store's fault mapping, with foreign data reported under the pool's key."""

        async def run() -> T:
            try:
                return await action()
            except redis_errors.ResponseError as error:
                if "WRONGTYPE" in str(error) or "attempt to compare" in str(error) or "arithmetic" in str(error):
                    raise CorruptState(keys[0], str(error)) from None
                raise

        return await self._store.call(operation, None, run)

    async def acquire(self, tenant: str, pool: str, policy: PoolPolicy, wave: WaveRequest) -> PoolDecision:
        check_request(policy, wave)
        keys = self.keys(*checked_names(tenant, pool))
        args: list[str | int] = [
            repr(float(policy.samples_per_second)),
            policy.burst,
            repr(float(policy.exploration)),
            repr(float(self._stale_s)),
            int(policy.ttl_s * 1000),
            wave.request_id,
            wave.samples,
            wave.drawn,
            repr(float(wave.uncertainty)),
            int(wave.mandatory),
        ]
        reply = await self._call("pool_acquire", keys, lambda: self._acquire(keys=keys, args=args))
        granted, retry_after_s, level, spent = reply
        return PoolDecision(int(granted), float(retry_after_s), float(level), int(spent))

    async def withdraw(self, tenant: str, pool: str, request_id: str) -> None:
        waiting = self.keys(*checked_names(tenant, pool))[1]
        await self._call("pool_withdraw", [waiting], lambda: _awaited(self._redis.hdel(waiting, request_id)))

    async def record(self, tenant: str, pool: str, request_id: str, tokens: int) -> None:
        if tokens <= 0:
            return
        keys = self.keys(*checked_names(tenant, pool))
        args: list[str | int] = [request_id, tokens, int(MIN_TTL_S * 1000)]
        await self._call("pool_record", keys, lambda: self._record(keys=keys, args=args))

    async def stats(self, tenant: str, pool: str, policy: PoolPolicy) -> PoolStats:
        policy.validate("policy")
        keys = self.keys(*checked_names(tenant, pool))
        now, level, updated, spent_samples, spent_tokens, raw = await self._call(
            "pool_stats", keys, lambda: self._stats(keys=keys[:2])
        )
        now_s = float(now)
        try:
            waiting = tuple(_waiter(raw[i].decode(), raw[i + 1].decode()) for i in range(0, len(raw), 2))
            state = BucketState(
                level=float(level) if level is not None else float(policy.burst),  # no level: the pool is full
                updated_s=float(updated) if updated is not None else now_s,
                spent_samples=int(spent_samples or 0),
                spent_tokens=int(spent_tokens or 0),
                waiting=waiting,
            )
        except (TypeError, ValueError) as error:
            raise CorruptState(keys[0], f"unreadable pool state: {error}") from None
        return model.view(state, policy, now_s, self._stale_s)

    async def usage(self, tenant: str, pool: str, request_id: str) -> RequestUsage:
        requests = self.keys(*checked_names(tenant, pool))[2]
        samples, tokens = await self._call(
            "pool_usage",
            [requests],
            lambda: _awaited(self._redis.hmget(requests, [f"s:{request_id}", f"t:{request_id}"])),
        )
        return RequestUsage(int(samples or 0), int(tokens or 0))


def _awaited(reply: Awaitable[T] | T) -> Awaitable[T]:
    """redis-py types its commands for both its clients; the asyncio client's always return awaitables."""
    return cast(Awaitable[T], reply)


def _waiter(request_id: str, value: str) -> Waiter:
    samples, drawn, uncertainty, first_seen_s, last_seen_s = value.split()
    return Waiter(request_id, int(samples), int(drawn), float(uncertainty), float(first_seen_s), float(last_seen_s))
