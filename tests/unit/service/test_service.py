"""The application service with the in-process store and the scripted backend: core values in, core values out."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path

import pytest

from certa.config import Settings, StoreSettings
from certa.core.errors import Conflict, Overloaded, QuotaExceeded
from certa.core.report import TextDelta
from certa.core.spec import SolveSpec
from certa.core.strategies import DynasorConfig, PlainSpec
from certa.core.types import ProbeRecord, SamplingParams, StopReason
from certa.service import Finished, SolveService
from certa.store.requests.memory import MemoryStore
from certa.store.requests.port import RequestKey, Status
from certa.tenants import TenantPolicies
from certa.testing.scripted_backend import ScriptedBackend

pytestmark = pytest.mark.unit

SETTINGS = Settings(prompt_template="raw", store=StoreSettings(lease_s=0.3, sweep_interval_s=3600))


def spec(request_id: str = "r1", text: str = "How many dollars?", **changes: object) -> SolveSpec:
    base = SolveSpec(
        request_id=request_id,
        text=text,
        raw_prompt=False,
        strategy=PlainSpec(),
        sampling=SamplingParams(),
        token_budget=400,
        deadline_s=30.0,
        backend="scripted",
        model="",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def service(
    store: MemoryStore, backend: ScriptedBackend, settings: Settings = SETTINGS, **kwargs: object
) -> SolveService:
    return SolveService(settings, {"scripted": backend}, store, **kwargs)  # type: ignore[arg-type]


async def test_a_plain_request_runs_to_the_scripted_answer_and_reports_its_tokens() -> None:
    backend = ScriptedBackend()
    solver = service(MemoryStore(), backend)
    view = await solver.submit(spec(), "acme", idempotent=False)
    assert view.status is Status.RUNNING and view.key == RequestKey("acme", "r1")
    done = await solver.wait(view.key)
    assert done.status is Status.SUCCEEDED
    assert done.result is not None and done.result.outcome.answer == "18"
    assert done.result.outcome.stop_reason is StopReason.MODEL_FINISHED
    assert done.result.usage.path_tokens == len(backend.model.script_template.replace("ANSWER", "18"))
    assert done.model == "scripted" and done.strategy == "plain"


async def test_following_yields_core_events_in_order_then_the_result() -> None:
    solver = service(MemoryStore(), ScriptedBackend())
    dynasor = DynasorConfig(chunk_tokens=40, certainty_threshold=2, probe_tokens=8)
    view = await solver.submit(spec(strategy=dynasor), "acme", idempotent=False)
    events = [event async for event in solver.follow(view.key)]
    assert isinstance(events[-1], Finished) and events[-1].result is not None
    texts = "".join(event.text for event in events if isinstance(event, TextDelta))
    assert texts.startswith("Janet's ducks")
    assert any(isinstance(event, ProbeRecord) for event in events)
    assert events[-1].result.outcome.answer == "18"


async def test_a_retry_with_the_same_id_attaches_and_a_different_request_conflicts() -> None:
    backend = ScriptedBackend()
    solver = service(MemoryStore(), backend)
    first = await solver.submit(spec(), "acme", idempotent=True)
    await solver.wait(first.key)
    calls = len(backend.requests)
    again = await solver.submit(spec(), "acme", idempotent=True)
    assert again.key == first.key and again.status is Status.SUCCEEDED
    assert len(backend.requests) == calls  # attached: nothing ran again
    with pytest.raises(Conflict):
        await solver.submit(spec(token_budget=401), "acme", idempotent=True)


async def test_a_resumed_request_runs_the_stored_spec_not_one_checked_against_the_new_replicas_caps() -> None:
    store = MemoryStore(lease_s=0.3)
    slow = "[[slow:0.01]] How many dollars?"
    first = service(store, ScriptedBackend())
    view = await first.submit(spec(text=slow, token_budget=5000), "acme", idempotent=True)
    await asyncio.sleep(0.2)
    await first.drain(timeout_s=0.0)  # hands the request over, leaving its checkpoint in the store
    strict = replace(SETTINGS, max_token_budget=100, default_token_budget=50)
    backend = ScriptedBackend()
    second = service(store, backend, settings=strict)
    done = await second.wait(view.key)
    assert done.status is Status.SUCCEEDED and done.attempt == 2
    assert done.result is not None and done.result.outcome.answer == "18" and done.result.token_budget == 5000
    assert backend.requests and all(request.max_tokens > 100 for request in backend.requests)


async def test_admission_refuses_what_the_replica_or_the_tenant_cannot_take(tmp_path: Path) -> None:
    tenants = tmp_path / "tenants.json"
    tenants.write_text(json.dumps({"tenants": {"acme": {"max_tokens_per_request": 100}}}))
    policies = TenantPolicies(str(tenants))
    solver = service(MemoryStore(), ScriptedBackend(), policies=policies)
    with pytest.raises(QuotaExceeded, match="over tenant 'acme'"):
        await solver.submit(spec(token_budget=101), "acme", idempotent=False)
    full = service(MemoryStore(), ScriptedBackend(), settings=replace(SETTINGS, max_concurrent_requests=1))
    await full.submit(spec("a", text="[[slow:0.01]] q"), "acme", idempotent=False)
    with pytest.raises(Overloaded):
        await full.submit(spec("b"), "acme", idempotent=False)
    await full.drain(timeout_s=0.0)
