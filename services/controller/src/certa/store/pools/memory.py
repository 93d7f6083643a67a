"""Budget pools in one process (with `CERTA_STORE=memory`, and in tests): the pure model, applied in place."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from certa.core import budget_pool as model
from certa.core.budget_pool import (
    MIN_TTL_S,
    STALE_S,
    BucketState,
    PoolDecision,
    PoolPolicy,
    PoolStats,
    RequestUsage,
    WaveRequest,
)
from certa.store.pools.port import check_request, checked_names


@dataclass
class _Pool:
    state: BucketState
    expires_at_s: float
    ttl_s: float
    usage: dict[str, RequestUsage] = field(default_factory=dict)


class MemoryBudgetPools:
    """The same pools in one process (with `CERTA_STORE=memory`, and in tests): the pure model, applied in place.
    Each method runs without awaiting, so concurrent requests on the event loop see each decision whole."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, stale_s: float = STALE_S) -> None:
        self._clock = clock
        self._stale_s = stale_s
        self._pools: dict[tuple[str, str], _Pool] = {}

    def _pool(self, tenant: str, pool: str, now_s: float) -> _Pool | None:
        key = checked_names(tenant, pool)
        found = self._pools.get(key)
        if found is not None and now_s >= found.expires_at_s:
            del self._pools[key]
            return None
        return found

    async def acquire(self, tenant: str, pool: str, policy: PoolPolicy, wave: WaveRequest) -> PoolDecision:
        check_request(policy, wave)
        now_s = self._clock()
        found = self._pool(tenant, pool, now_s)
        if found is None:
            state = BucketState.full(policy, now_s)
            found = self._pools[checked_names(tenant, pool)] = _Pool(state, now_s, policy.ttl_s)
        found.state, decision = model.acquire(found.state, policy, wave, now_s, self._stale_s)
        if decision.granted:
            usage = found.usage.get(wave.request_id, RequestUsage())
            found.usage[wave.request_id] = RequestUsage(usage.samples + decision.granted, usage.tokens)
        found.ttl_s = policy.ttl_s
        found.expires_at_s = now_s + found.ttl_s
        return decision

    async def withdraw(self, tenant: str, pool: str, request_id: str) -> None:
        found = self._pool(tenant, pool, self._clock())
        if found is not None:
            found.state = model.withdraw(found.state, request_id)

    async def record(self, tenant: str, pool: str, request_id: str, tokens: int) -> None:
        if tokens <= 0:
            return
        now_s = self._clock()
        found = self._pool(tenant, pool, now_s)
        if found is None:  # like Redis: counters without a level; the pool still starts full
            state = BucketState(level=float("inf"), updated_s=now_s)
            found = self._pools[checked_names(tenant, pool)] = _Pool(state, now_s, MIN_TTL_S)
        found.state = BucketState(
            found.state.level,
            found.state.updated_s,
            found.state.spent_samples,
            found.state.spent_tokens + tokens,
            found.state.waiting,
        )
        usage = found.usage.get(request_id, RequestUsage())
        found.usage[request_id] = RequestUsage(usage.samples, usage.tokens + tokens)
        found.expires_at_s = now_s + found.ttl_s

    async def stats(self, tenant: str, pool: str, policy: PoolPolicy) -> PoolStats:
        policy.validate("policy")
        now_s = self._clock()
        found = self._pool(tenant, pool, now_s)
        state = found.state if found is not None else BucketState.full(policy, now_s)
        return model.view(state, policy, now_s, self._stale_s)

    async def usage(self, tenant: str, pool: str, request_id: str) -> RequestUsage:
        found = self._pool(tenant, pool, self._clock())
        return found.usage.get(request_id, RequestUsage()) if found is not None else RequestUsage()
