"""Online budget pools shared by every replica (the model is in `certa.core.budget_pool`).

Redis keys of one pool share the hash tag `{TENANT/POOL}`, so its scripts touch one slot in a cluster:

* `PREFIX:pool:{TENANT/POOL}:state` (hash): `level` at `updated` (server seconds), `spent_samples`,
  `spent_tokens`, and `ttl_ms` (so a write that carries no policy can refresh the TTLs);
* `…:waiting` (hash): request id → `samples drawn uncertainty first_seen last_seen`. Scores depend on the pool's
  `spent_samples`, which every grant changes, so they are computed at each decision rather than stored;
* `…:requests` (hash): `s:ID` → samples granted to request ID, `t:ID` → tokens it generated.

Acquiring is one Lua script (refill, drop stale waiters, rank, grant or not) on the server's `TIME`, so replicas
with skewed clocks agree. Every write refreshes the TTL of the pool's keys, `PoolPolicy.ttl_s`: an idle pool
vanishes and starts full again.
"""

from __future__ import annotations

from typing import Protocol

from certa.core.budget_pool import PoolDecision, PoolPolicy, PoolStats, RequestUsage, WaveRequest, validate_pool_name
from certa.store.requests.port import validate_tenant


class BudgetPools(Protocol):
    """The port. Redis-backed methods raise `StoreUnavailable` when Redis cannot be reached and `CorruptState`
    (naming the key) for data they cannot read; bad tenant or pool names raise `InvalidArgument`."""

    async def acquire(self, tenant: str, pool: str, policy: PoolPolicy, wave: WaveRequest) -> PoolDecision:
        """Grant the wave or say when to ask again; mandatory waves are granted at once and never wait."""

    async def withdraw(self, tenant: str, pool: str, request_id: str) -> None:
        """Leave the waiting set (the request finished or gave up); idempotent."""

    async def record(self, tenant: str, pool: str, request_id: str, tokens: int) -> None:
        """Add generated tokens to the pool's `spent_tokens` and to the request's usage."""

    async def stats(self, tenant: str, pool: str, policy: PoolPolicy) -> PoolStats: ...

    async def usage(self, tenant: str, pool: str, request_id: str) -> RequestUsage:
        """What the request got from the pool so far (zero when unknown or expired)."""


def checked_names(tenant: str, pool: str) -> tuple[str, str]:
    """The tenant and pool names, validated (`InvalidArgument` naming the bad one)."""
    return validate_tenant(tenant), validate_pool_name(pool, "pool")


def check_request(policy: PoolPolicy, wave: WaveRequest) -> None:
    """Refuse a policy or wave out of range (`InvalidArgument` naming the field)."""
    policy.validate("policy")
    wave.validate("wave")
