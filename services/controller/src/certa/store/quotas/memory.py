"""Quotas in one process (with `CERTA_STORE=memory`, and in tests)."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable

from certa.store.quotas.port import WINDOW_MS, raise_for, window_used


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
            if window_used(now, current, previous) >= tokens_per_minute:
                outcome = 2
        raise_for(outcome, tenant, max_in_flight, tokens_per_minute, now, current, previous)
        running.add(request_id)

    async def release(self, tenant: str, request_id: str) -> None:
        self._running[tenant].discard(request_id)

    async def spend(self, tenant: str, tokens: int) -> None:
        self._tokens[(tenant, int(self._clock() * 1000) // WINDOW_MS)] += max(tokens, 0)
