"""Online budget pools through the API: two replicas, one real Redis, the tenant's pools from its tenants file.

A self-consistency request naming a pool draws its first wave at once and asks the pool for each further one; a
wave the pool cannot grant within its wait ends the request with what it has (stop reason budget). The pool is the
tenant's, shared by every replica; bad pool names and waves larger than the burst are INVALID_ARGUMENT.
"""

from __future__ import annotations

import grpc
import pytest

from certa.core.budget_pool import PoolPolicy
from certa.store.pools.redis import RedisBudgetPools
from certa.store.requests.redis import RedisStore
from certa.v1 import reasoning_pb2 as pb
from certa.v1 import reasoning_pb2_grpc as pb_grpc
from tests.system.api.conftest import Replicas

pytestmark = pytest.mark.integration

ACME = (("x-certa-tenant", "acme"),)
SPLIT = "[[vote:18,7,9,11]] Q"  # answers follow the seed: the votes never agree
# Hardly any refill within a test: what the pool holds is its burst.
STINGY = {"samples_per_second": 0.001, "burst": 4, "max_wait_s": 0.3}


def pooled(question: str, pool: str = "chat", wave_size: int = 2, seed: int = 1) -> pb.SolveRequest:
    return pb.SolveRequest(
        question=question,
        strategy=pb.Strategy(
            self_consistency=pb.SelfConsistency(
                plain=pb.PlainCot(),
                wave_size=wave_size,
                max_samples=12,
                stop_rule=pb.StopRule(certaindex=pb.CertaindexRule(threshold=0.99, min_samples=2)),
                pool=pool,
            )
        ),
        sampling=pb.SamplingParams(temperature=0.7, seed=seed),
        token_budget=400,
    )


def stubs(replicas: Replicas) -> list[tuple[grpc.aio.Channel, pb_grpc.ReasoningServiceStub]]:
    channels = [grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") for server in replicas.servers]
    return [(channel, pb_grpc.ReasoningServiceStub(channel)) for channel in channels]


async def test_a_pool_spent_by_one_replica_stops_the_next_request_on_the_other(replicas: Replicas) -> None:
    replicas.limits(acme={"pools": {"chat": STINGY}})
    (first_channel, first), (second_channel, second) = stubs(replicas)
    async with first_channel, second_channel:
        spender = await first.Solve(pooled(SPLIT), metadata=ACME)
        late = await second.Solve(pooled(SPLIT, seed=7), metadata=ACME)
    # burst 4 = the first wave (2) and one more; the third wave is refused after the pool's 0.3 s wait
    assert spender.status == pb.SOLVE_STATUS_SUCCEEDED and len(spender.result.samples) == 4
    assert spender.result.stop_reason == pb.STOP_REASON_BUDGET
    assert "budget pool granted no further wave (4 samples drawn)" in spender.result.stop_detail
    # the other replica sees the same pool: only its mandatory first wave, drawn into debt
    assert late.result.stop_reason == pb.STOP_REASON_BUDGET and len(late.result.samples) == 2
    store = replicas.servers[0].service.store
    assert isinstance(store, RedisStore)
    stats = await RedisBudgetPools(store).stats("acme", "chat", PoolPolicy(**STINGY))  # type: ignore[arg-type]
    assert stats.spent_samples == 6 and stats.level == pytest.approx(-2, abs=0.1) and stats.waiting == ()
    generated = sum(r.result.usage.path_tokens + r.result.usage.probe_tokens for r in (spender, late))
    assert stats.spent_tokens == generated


async def test_a_settled_request_never_waits_for_the_pool(replicas: Replicas) -> None:
    replicas.limits(acme={"pools": {"chat": {**STINGY, "burst": 2, "max_wait_s": 5.0}}})
    (channel, solve), (other_channel, _) = stubs(replicas)
    async with channel, other_channel:
        response = await solve.Solve(pooled("Q"), metadata=ACME)  # every sample answers 18: certain after wave 1
    assert response.result.stop_reason == pb.STOP_REASON_CERTAIN and len(response.result.samples) == 2
    assert response.result.wall_time.ToNanoseconds() < 5e9


@pytest.mark.parametrize(
    ("request_", "field", "message"),
    [
        (pooled(SPLIT, pool="other"), "strategy.self_consistency.pool", "no budget pool 'other' (configured: chat)"),
        (pooled(SPLIT, pool="chat room"), "strategy.self_consistency.pool", "letters, digits"),
        (pooled(SPLIT, wave_size=5), "strategy.self_consistency.wave_size", "burst of pool 'chat' (4), got 5"),
    ],
    ids=["unknown-pool", "bad-name", "wave-over-burst"],
)
async def test_pools_a_request_cannot_use_are_invalid_arguments(
    replicas: Replicas, request_: pb.SolveRequest, field: str, message: str
) -> None:
    replicas.limits(acme={"pools": {"chat": STINGY}})
    (channel, solve), (other_channel, _) = stubs(replicas)
    async with channel, other_channel:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await solve.Solve(request_, metadata=ACME)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert raised.value.details().startswith(field) and message in raised.value.details()
