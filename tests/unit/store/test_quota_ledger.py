"""The in-process quota ledger (`CERTA_STORE=memory`) and what requests charge to it (issue 17's test audit)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from certa.core.errors import QuotaExceeded
from certa.core.strategies import DynasorConfig
from certa.service import SolveService
from certa.store.quotas.memory import MemoryQuotaLedger
from certa.store.quotas.port import IN_FLIGHT_RETRY_S, WINDOW_MS
from certa.store.requests.memory import MemoryStore
from certa.tenants import TenantPolicies
from certa.testing.scripted_backend import ScriptedBackend
from tests.unit.service.test_service import SETTINGS, spec

pytestmark = pytest.mark.unit

MINUTE_START_S = 1_000 * WINDOW_MS / 1000  # a clock at the start of a minute: the previous minute is empty


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def test_in_flight_is_limited_per_tenant_and_a_released_slot_is_free_again() -> None:
    ledger = MemoryQuotaLedger(Clock(MINUTE_START_S))
    await ledger.admit("acme", "a", 2, 0)
    await ledger.admit("acme", "a", 2, 0)  # the same request again takes no second slot
    await ledger.admit("acme", "b", 2, 0)
    with pytest.raises(QuotaExceeded) as raised:
        await ledger.admit("acme", "c", 2, 0)
    assert raised.value.retry_after_s == IN_FLIGHT_RETRY_S
    await ledger.admit("globex", "c", 2, 0)  # another tenant has its own slots
    await ledger.release("acme", "a")
    await ledger.admit("acme", "c", 2, 0)


async def test_the_token_rate_refuses_at_the_limit_not_only_past_it() -> None:
    clock = Clock(MINUTE_START_S)
    ledger = MemoryQuotaLedger(clock)
    await ledger.spend("acme", 99)
    await ledger.admit("acme", "under", 0, 100)  # 99 < 100
    await ledger.spend("acme", 1)
    with pytest.raises(QuotaExceeded) as raised:  # exactly 100 used: the limit is reached
        await ledger.admit("acme", "at", 0, 100)
    assert raised.value.retry_after_s is not None and raised.value.retry_after_s > 0
    clock.now += 2 * WINDOW_MS / 1000  # two minutes later the window is empty
    await ledger.admit("acme", "later", 0, 100)


async def test_a_request_charges_its_probe_tokens_too(tmp_path: Path) -> None:
    tenants = tmp_path / "tenants.json"
    tenants.write_text(json.dumps({"default": {"tokens_per_minute": 1_000_000}}))
    ledger = MemoryQuotaLedger()
    solver = SolveService(
        SETTINGS, {"scripted": ScriptedBackend()}, MemoryStore(), quotas=ledger, policies=TenantPolicies(str(tenants))
    )
    dynasor = DynasorConfig(chunk_tokens=40, certainty_threshold=2, probe_tokens=8)
    view = await solver.submit(spec(strategy=dynasor), "acme", idempotent=False)
    done = await solver.wait(view.key)
    assert done.result is not None
    usage = done.result.usage
    assert usage.probe_tokens > 0
    assert sum(ledger._tokens.values()) == usage.path_tokens + usage.probe_tokens
