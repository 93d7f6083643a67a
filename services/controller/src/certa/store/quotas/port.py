"""Per-tenant quotas shared by every replica: requests in flight and tokens per minute.

In flight: a sorted set of the tenant's running request ids (score: when the entry goes stale, in case a request
is never finished by any replica). Tokens per minute: a sliding window made of per-minute counters, the previous
minute weighted by how much of it still overlaps the last 60 seconds. Admission is one Lua script, so concurrent
requests on several replicas cannot overshoot the in-flight limit; tokens are added as checkpoints are written,
so a burst can exceed the token rate by what its requests generate before their next checkpoint.
"""

from __future__ import annotations

from typing import Protocol

from certa.core.errors import QuotaExceeded

WINDOW_MS = 60_000
IN_FLIGHT_RETRY_S = 1.0
"""The wait suggested to a tenant at its in-flight limit: its requests finish at their own pace."""


class QuotaLedger(Protocol):
    async def admit(self, tenant: str, request_id: str, max_in_flight: int, tokens_per_minute: int) -> None:
        """Count the request as in flight, or raise `QuotaExceeded` with how long to wait."""

    async def release(self, tenant: str, request_id: str) -> None: ...

    async def spend(self, tenant: str, tokens: int) -> None: ...


def window_used(now_ms: int, current: int, previous: int) -> float:
    """Tokens in the sliding minute: this minute's, plus the previous minute's share still inside the window."""
    return current + previous * (WINDOW_MS - now_ms % WINDOW_MS) / WINDOW_MS


def window_wait_ms(now_ms: int, current: int, previous: int, limit: int) -> int:
    """How long until the sliding window holds less than `limit` tokens (0 when it already does)."""
    into = now_ms % WINDOW_MS
    if current >= limit:
        return WINDOW_MS - into + max(int(WINDOW_MS * (1 - (limit / max(current, 1)))), 0)
    if window_used(now_ms, current, previous) < limit:
        return 0
    needed_into = WINDOW_MS * (1 - (limit - current) / previous)  # previous' weight falls below what is left
    return max(int(needed_into - into) + 1, 1)

def raise_for(
    outcome: int, tenant: str, max_in_flight: int, tokens_per_minute: int, now_ms: int, current: int, previous: int
) -> None:
    if outcome == 1:
        raise QuotaExceeded(
            f"tenant {tenant!r} has {max_in_flight} requests in flight, its limit; retry when one finishes",
            retry_after_s=IN_FLIGHT_RETRY_S,
        )
    if outcome == 2:
        wait_ms = window_wait_ms(now_ms, current, previous, tokens_per_minute)
        raise QuotaExceeded(
            f"tenant {tenant!r} generated its {tokens_per_minute} tokens per minute; retry in {wait_ms / 1000:.1f}s",
            retry_after_s=wait_ms / 1000,
        )
