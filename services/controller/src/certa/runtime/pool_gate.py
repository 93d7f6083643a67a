"""A request's side of its budget pool: ask for each wave, and wait as long as the pool's policy allows.

The pool (`certa.store.pools`) decides at once: granted, or come back in `retry_after_s` (its rank among
the waiting requests may change meanwhile). The gate asks again until the wave is granted or `max_wait_s` has
passed; then the request stops with what it has. It leaves the pool's waiting set when it gives up and when the
request ends, so a finished request never holds back the others.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from certa.core.budget_pool import PoolPolicy, WaveRequest
from certa.core.commands import AskPool
from certa.observability.telemetry import Telemetry
from certa.store.pools.port import BudgetPools


class PoolGate:
    """Asks `pool` of `tenant` for the waves of one request."""

    def __init__(
        self,
        pools: BudgetPools,
        tenant: str,
        pool: str,
        policy: PoolPolicy,
        request_id: str,
        telemetry: Telemetry,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._pools = pools
        self._tenant = tenant
        self._pool = pool
        self._policy = policy
        self._request_id = request_id
        self._telemetry = telemetry
        self._clock = clock

    async def ask(self, ask: AskPool) -> int:
        """The samples granted for the wave `ask` describes, or 0 once the pool's wait is over."""
        wave = WaveRequest(self._request_id, ask.samples, ask.drawn, ask.uncertainty, ask.mandatory)
        give_up_at = self._clock() + self._policy.max_wait_s
        while True:
            decision = await self._pools.acquire(self._tenant, self._pool, self._policy, wave)
            self._telemetry.pool_decision(self._tenant, self._pool, ask.mandatory, decision.granted, decision.level)
            if decision.granted:
                return decision.granted
            left = give_up_at - self._clock()
            if left <= 0:
                await self._pools.withdraw(self._tenant, self._pool, self._request_id)
                self._telemetry.pool_denied(self._tenant, self._pool)
                return 0
            await asyncio.sleep(min(decision.retry_after_s, left))

    async def close(self, generated_tokens: int) -> None:
        """The request ended: leave the waiting set, and book what it generated to the pool's statistics."""
        await self._pools.withdraw(self._tenant, self._pool, self._request_id)
        await self._pools.record(self._tenant, self._pool, self._request_id, generated_tokens)
