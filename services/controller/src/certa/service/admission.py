"""Whether a request may start here: the replica's capacity, its tenant's limits, quotas and budget pool."""

from __future__ import annotations

import logging

from certa.core.budget_pool import PoolPolicy
from certa.core.errors import InvalidArgument, Overloaded, QuotaExceeded, StoreUnavailable
from certa.core.spec import SolveSpec
from certa.core.strategies import BatchSpec, SelfConsistencySpec
from certa.service.planning import requested_tokens
from certa.store.quotas.port import QuotaLedger
from certa.tenants import TenantPolicies

log = logging.getLogger(__name__)


class Admission:
    def __init__(self, max_concurrent_requests: int, quotas: QuotaLedger, policies: TenantPolicies) -> None:
        self._max_concurrent = max_concurrent_requests
        self._quotas = quotas
        self._policies = policies

    def check(self, spec: SolveSpec, tenant: str, in_flight: int) -> None:
        """Refuse a request this replica has no room for or its tenant may not send (nothing is reserved)."""
        if in_flight >= self._max_concurrent:
            raise Overloaded(f"{self._max_concurrent} requests are already in flight on this replica; retry later")
        policy = self._policies.of(tenant)
        self.pool_policy(tenant, spec.strategy)
        requested = requested_tokens(spec)
        if policy.max_tokens_per_request and requested > policy.max_tokens_per_request:
            raise QuotaExceeded(
                f"the request may generate {requested} tokens, over tenant {tenant!r}'s limit of "
                f"{policy.max_tokens_per_request} tokens per request"
            )
        questions = len(spec.strategy.questions) if isinstance(spec.strategy, BatchSpec) else 0
        if policy.max_batch_size and questions > policy.max_batch_size:
            raise QuotaExceeded(
                f"{questions} questions exceed tenant {tenant!r}'s limit of {policy.max_batch_size} per batch"
            )

    def pool_policy(self, tenant: str, strategy: object) -> PoolPolicy | None:
        """The budget pool a self-consistency request names, or None; `InvalidArgument` when it cannot use it."""
        if not isinstance(strategy, SelfConsistencySpec) or not strategy.pool:
            return None
        field = "strategy.self_consistency"
        pools = self._policies.of(tenant).pools
        policy = pools.get(strategy.pool)
        if policy is None:
            configured = ", ".join(sorted(pools)) or "none"
            raise InvalidArgument(
                f"{field}.pool", f"tenant {tenant!r} has no budget pool {strategy.pool!r} (configured: {configured})"
            )
        if strategy.wave_size > policy.burst:
            raise InvalidArgument(
                f"{field}.wave_size",
                f"must not exceed the burst of pool {strategy.pool!r} ({policy.burst}), got {strategy.wave_size}",
            )
        return policy

    async def reserve(self, tenant: str, request_id: str) -> None:
        """Count the request in its tenant's quotas (`QuotaExceeded` with how long to wait when it may not run)."""
        policy = self._policies.of(tenant)
        await self._quotas.admit(tenant, request_id, policy.max_in_flight, policy.tokens_per_minute)

    async def release(self, tenant: str, request_id: str) -> None:
        """Release an in-flight slot; if the store is down the slot goes stale by itself (after the state TTL)."""
        try:
            await self._quotas.release(tenant, request_id)
        except StoreUnavailable as error:
            log.warning("tenant %s: in-flight slot of %s not released: %s", tenant, request_id, error)

    async def spend(self, tenant: str, tokens: int) -> None:
        await self._quotas.spend(tenant, tokens)
