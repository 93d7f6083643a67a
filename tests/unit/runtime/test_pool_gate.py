"""The request's side of a budget pool: wait for a wave as the pool says, give up after the pool's wait."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from certa.core.budget_pool import PoolPolicy
from certa.core.commands import AskPool
from certa.core.errors import InvalidArgument
from certa.observability.telemetry import Telemetry
from certa.runtime.pool_gate import PoolGate
from certa.store.pools.memory import MemoryBudgetPools
from certa.tenants import TenantPolicies

pytestmark = pytest.mark.unit


def gate(pools: MemoryBudgetPools, policy: PoolPolicy, request_id: str = "r1") -> PoolGate:
    return PoolGate(pools, "acme", "chat", policy, request_id, Telemetry.disabled())


async def test_a_wave_waits_for_the_refill_then_is_granted() -> None:
    pools, policy = MemoryBudgetPools(), PoolPolicy(samples_per_second=20.0, burst=2, max_wait_s=2.0)
    asking = gate(pools, policy)
    assert await asking.ask(AskPool(2, 0, 1.0, mandatory=True)) == 2  # the bucket is now empty
    assert await asking.ask(AskPool(2, 2, 0.5)) == 2  # after about 0.1 s of refill
    stats = await pools.stats("acme", "chat", policy)
    assert stats.spent_samples == 4 and stats.waiting == ()


async def test_past_the_pool_s_wait_the_wave_is_refused_and_the_request_leaves_the_queue() -> None:
    pools, policy = MemoryBudgetPools(), PoolPolicy(samples_per_second=0.01, burst=2, max_wait_s=0.1)
    asking = gate(pools, policy)
    await asking.ask(AskPool(2, 0, 1.0, mandatory=True))
    assert await asking.ask(AskPool(2, 2, 0.9)) == 0
    assert (await pools.stats("acme", "chat", policy)).waiting == ()


async def test_closing_books_the_request_s_tokens() -> None:
    pools, policy = MemoryBudgetPools(), PoolPolicy(samples_per_second=1.0, burst=4)
    asking = gate(pools, policy)
    await asking.ask(AskPool(2, 0, 1.0, mandatory=True))
    await asking.close(generated_tokens=321)
    assert (await pools.stats("acme", "chat", policy)).spent_tokens == 321
    assert (await pools.usage("acme", "chat", "r1")).tokens == 321


def tenants(tmp_path: Path, document: dict[str, object]) -> TenantPolicies:
    path = tmp_path / "tenants.json"
    path.write_text(json.dumps(document))
    return TenantPolicies(str(path))


def test_pools_come_from_the_tenants_file_and_a_tenant_s_pools_replace_the_default_s(tmp_path: Path) -> None:
    policies = tenants(
        tmp_path,
        {
            "default": {"pools": {"shared": {"samples_per_second": 5, "burst": 50}}},
            "tenants": {"acme": {"pools": {"chat": {"samples_per_second": 0.5, "burst": 8, "max_wait_s": 1.5}}}},
        },
    )
    assert policies.of("anyone").pools == {"shared": PoolPolicy(5, 50)}
    assert policies.of("acme").pools == {"chat": PoolPolicy(0.5, 8, max_wait_s=1.5)}


@pytest.mark.parametrize(
    ("pool", "message"),
    [
        ({"burst": 8}, "needs samples_per_second and burst"),
        ({"samples_per_second": 1, "burst": 8, "colour": "red"}, "unknown fields ['colour']"),
        ({"samples_per_second": 0, "burst": 8}, "samples_per_second: must be a finite number > 0"),
        ({"samples_per_second": 1, "burst": 2.5}, "burst: must be an integer"),
        ({"samples_per_second": 1, "burst": 8, "max_wait_s": -1}, "max_wait_s: must be a finite number >= 0"),
    ],
)
def test_a_bad_pool_names_what_to_fix(tmp_path: Path, pool: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidArgument, match=r"CERTA_TENANTS_FILE.*tenants\.acme\.pools\.chat") as raised:
        tenants(tmp_path, {"tenants": {"acme": {"pools": {"chat": pool}}}})
    assert message in str(raised.value)


def test_a_bad_pool_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="letters, digits"):
        tenants(tmp_path, {"tenants": {"acme": {"pools": {"chat room": {"samples_per_second": 1, "burst": 2}}}}})
