"""Issue 17's findings, each pinned by a test that failed before the fix: redaction, full-match patterns, bounded
fields and stop rules, a sweep one record cannot stop, schema versions across a rolling upgrade, retries of
retryable failures, a record lost mid-run, the model catalog and fair sharing of a backend between tenants."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from certa.api.validation import validate, validate_request_id
from certa.config import Settings, load_settings
from certa.core.budget_pool import validate_pool_name
from certa.core.errors import BackendUnavailable, InvalidArgument, NewerRecord, SolveInterrupted, StoreUnavailable
from certa.core.redact import redact_text, redact_url
from certa.core.report import Interrupted, SolveReport, Usage
from certa.core.stop_rules import MAX_RULE_SAMPLES, CertaindexRule, EscRule, validate_stop_rule
from certa.observability.redacting_log import RedactingFilter
from certa.runtime.fair_queue import FairQueue
from certa.server import build_backends
from certa.service import SolveService
from certa.store.requests import codec, values
from certa.store.requests.memory import MemoryStore
from certa.store.requests.port import RequestKey, Status, validate_tenant
from certa.tenants import TenantPolicies
from certa.testing.scripted_backend import ScriptedBackend
from certa.v1 import reasoning_pb2 as pb
from tests.unit.service.test_service import SETTINGS, spec
from tests.unit.store.test_store_values_schema2 import FINISHED, V2_CANCELLED, V2_FINISHED

pytestmark = pytest.mark.unit

SECRET = "s3cr3t-Pa55"
PLAIN = pb.Strategy(plain=pb.PlainCot())


# -- 1. credentials in URLs ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        f"openai+http://user:{SECRET}@host:8000/v1",
        f"redis://:{SECRET}@127.0.0.1:6379/0",
        f"rediss://default:{SECRET}@redis.example:6380",
        f"https://{SECRET}@api.example/v1",
        f"openai+https://host/v1?api_key={SECRET}&mode=text",
        f"triton://host:8001?access_token={SECRET}",
        f"redis://:pa/{SECRET}@host:6379",
    ],
)
def test_redacted_urls_keep_no_credential_but_keep_the_host(url: str) -> None:
    redacted = redact_url(url)
    assert SECRET not in redacted
    assert "host" in redacted or "127.0.0.1" in redacted or "example" in redacted
    assert SECRET not in redact_text(f"cannot reach {url!r} (refused); also {url}")


def test_redaction_keeps_adapter_options_and_plain_text() -> None:
    assert redact_url("triton://host:8001?mode=tokens&end_id=2") == "triton://host:8001?mode=tokens&end_id=2"
    assert redact_text("no url here: a/b@c") == "no url here: a/b@c"


def test_every_certa_error_message_is_redacted_when_made() -> None:
    error = BackendUnavailable("remote", f"cannot reach http://user:{SECRET}@host/v1: ConnectError")
    assert SECRET not in str(error) and "host/v1" in str(error)
    interrupted = SolveInterrupted(f"redis://:{SECRET}@h:1 went away", partial=None)
    assert SECRET not in str(interrupted)


def test_start_up_errors_about_urls_do_not_print_the_password() -> None:
    with pytest.raises(InvalidArgument) as raised:
        load_settings({"CERTA_STORE": "redis", "CERTA_REDIS_URL": f"http://:{SECRET}@host:6379",
                       "CERTA_AUTH_DISABLED": "true"})
    assert "CERTA_REDIS_URL" in str(raised.value) and "host:6379" in str(raised.value)
    assert SECRET not in str(raised.value)
    settings = load_settings({"CERTA_BACKENDS": f"b=ftp://u:{SECRET}@h/v1", "CERTA_STORE": "memory",
                              "CERTA_AUTH_DISABLED": "true"})
    with pytest.raises(InvalidArgument) as raised:
        build_backends(settings)
    assert "ftp" in str(raised.value) and SECRET not in str(raised.value)


def test_the_log_filter_redacts_messages_arguments_and_tracebacks() -> None:
    try:
        raise OSError(f"connect to redis://:{SECRET}@db:6379 failed")
    except OSError:
        record = logging.LogRecord("certa", logging.ERROR, __file__, 1, "start-up: %s", (f"http://u:{SECRET}@h",),
                                   sys.exc_info())
    assert RedactingFilter().filter(record)
    text = logging.Formatter().format(record)
    assert SECRET not in text and "db:6379" in text and "Traceback" in text


# -- 2 and 4. bounded fields, full matches -------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["\n", "\r", "\x00", "\r\n"])
def test_ids_tenants_and_pools_with_a_trailing_control_character_are_refused(suffix: str) -> None:
    with pytest.raises(InvalidArgument, match="request_id"):
        validate_request_id("x" + suffix)
    with pytest.raises(InvalidArgument):
        validate_tenant("alpha" + suffix)
    with pytest.raises(InvalidArgument):
        validate_pool_name("chat" + suffix, "pool")
    with pytest.raises(InvalidArgument, match="request_id"):
        validate(pb.SolveRequest(question="Q", strategy=PLAIN, request_id="x" + suffix), _settings(), "x")


def _settings() -> Settings:
    from certa.config import BackendSpec

    return Settings(backends=(BackendSpec("scripted", "scripted://"),))


def test_a_huge_model_name_is_refused_naming_the_field_and_the_limit_without_echoing_it() -> None:
    huge = "m" * 3_500_000
    with pytest.raises(InvalidArgument) as raised:
        validate(pb.SolveRequest(question="Q", strategy=PLAIN, model=huge), _settings(), "r")
    assert raised.value.field == "model" and "256" in str(raised.value) and len(str(raised.value)) < 300
    with pytest.raises(InvalidArgument, match="model"):
        validate(pb.SolveRequest(question="Q", strategy=PLAIN, model="ensemble\n"), _settings(), "r")
    named = pb.SolveRequest(question="Q", strategy=PLAIN, model="meta-llama/Llama-3.1-8B")
    accepted = validate(named, _settings(), "r")
    assert accepted.model == "meta-llama/Llama-3.1-8B"


def test_a_huge_backend_name_or_request_id_is_not_echoed() -> None:
    with pytest.raises(InvalidArgument) as raised:
        validate(pb.SolveRequest(question="Q", strategy=PLAIN, backend="b" * 100_000), _settings(), "r")
    assert len(str(raised.value)) < 300
    with pytest.raises(InvalidArgument) as raised:
        validate_request_id("i" * 100_000)
    assert len(str(raised.value)) < 300


# -- 8. stop rules bounded -------------------------------------------------------------------------------------


def test_nonsense_stop_rule_values_are_refused_naming_the_field() -> None:
    with pytest.raises(InvalidArgument, match=r"min_samples.*\[1, 1024\]"):
        validate_stop_rule(CertaindexRule(min_samples=2**32 - 1), "stop_rule.certaindex")
    with pytest.raises(InvalidArgument, match=r"window.*\[1, 1024\]"):
        validate_stop_rule(EscRule(window=2**32 - 1), "stop_rule.esc")
    assert validate_stop_rule(EscRule(window=MAX_RULE_SAMPLES)) == EscRule(window=MAX_RULE_SAMPLES)
    request = pb.SolveRequest(
        question="Q",
        sampling=pb.SamplingParams(temperature=0.7),
        strategy=pb.Strategy(self_consistency=pb.SelfConsistency(
            plain=pb.PlainCot(), stop_rule=pb.StopRule(esc=pb.EscRule(window=2**32 - 1)))),
    )
    with pytest.raises(InvalidArgument, match=r"strategy\.self_consistency\.stop_rule\.window: must be in \[1, 1024\]"):
        validate(request, _settings(), "r")


# -- 3. the sweep and schema versions --------------------------------------------------------------------------


def _service(store: MemoryStore, backend: ScriptedBackend, owner: str) -> SolveService:
    settings = replace(SETTINGS, store=replace(SETTINGS.store, replica_id=owner))
    return SolveService(settings, {"scripted": backend}, store)


async def _orphan(store: MemoryStore, request_id: str) -> RequestKey:
    """A request whose replica died right after it started (its lease is gone)."""
    dead = _service(store, ScriptedBackend(), "dead")
    view = await dead.submit(spec(request_id, text="[[slow:0.003]] How many dollars?"), "acme", idempotent=True)
    for run in list(dead._runs.local.values()):
        assert run.task is not None and run.heartbeat is not None
        run.heartbeat.cancel()
        run.task.cancel()
    await asyncio.sleep(0.01)
    store._entries[view.key].owner = ""
    return view.key


async def test_one_unreadable_record_does_not_stop_the_sweep(caplog: pytest.LogCaptureFixture) -> None:
    store = MemoryStore()
    broken = await _orphan(store, "broken")
    healthy = await _orphan(store, "healthy")
    store._entries[broken].fields[b"created_at"] = b"not a number"
    sweeper = _service(store, ScriptedBackend(), "alive")
    with caplog.at_level(logging.WARNING):
        resumed = await sweeper.sweep()
    assert resumed == 1 and healthy in sweeper._runs.local
    assert any("acme/broken" in record.getMessage() and "unreadable" in record.getMessage()
               for record in caplog.records)
    done = await sweeper.wait(healthy)
    assert done.status is Status.SUCCEEDED


async def test_rolling_upgrade_old_records_resume_on_new_code_and_new_records_are_left_by_old_code(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    store = MemoryStore()
    # What the old release (schema 2) left: a request it was running, with the partial result it checkpointed in its
    # own shape, and one it finished.
    written_by_old = await _orphan(store, "written-by-v2")
    store._entries[written_by_old].fields.update({b"v": b"2", b"summary": V2_CANCELLED})
    new_code = _service(store, ScriptedBackend(), "new")
    finished_by_old = (await new_code.submit(spec("finished-by-v2"), "acme", idempotent=True)).key
    await new_code.wait(finished_by_old)
    store._entries[finished_by_old].fields.update({b"v": b"2", b"summary": V2_FINISHED})
    # The new release writes version 3 and reads 2 and 3: it serves and resumes what the old release left.
    assert ("3", frozenset({"2", "3"})) == (codec.SCHEMA_VERSION, codec.READABLE_VERSIONS)
    assert (await new_code.describe(finished_by_old)).result == FINISHED
    left = await store.read(written_by_old)
    assert left is not None and values.stored_report(left) == SolveReport(
        Interrupted("Janet has 16", cancelled=True), Usage(40, 5), (), 0.5, 512
    )
    assert await new_code.sweep() == 1
    resumed = await new_code.wait(written_by_old)
    assert resumed.status is Status.SUCCEEDED and resumed.result is not None and resumed.result.outcome.answer == "18"
    assert store._entries[written_by_old].fields[b"v"] == b"3"  # its result is now in the new shape
    written_by_new = await _orphan(store, "written-by-v3")
    assert store._entries[written_by_new].fields[b"v"] == b"3"
    # The old release (writes and reads 2) meets it: it skips it, neither failing the sweep nor forgetting it.
    monkeypatch.setattr(codec, "SCHEMA_VERSION", "2")
    monkeypatch.setattr(codec, "READABLE_VERSIONS", frozenset({"2"}))
    old_code = _service(store, ScriptedBackend(), "old")
    with caplog.at_level(logging.WARNING):
        assert await old_code.sweep() == 0
    assert any("acme/written-by-v3" in r.getMessage() and "newer_schema" in r.getMessage() for r in caplog.records)
    with pytest.raises(NewerRecord):  # a client asking this replica gets UNAVAILABLE, not DATA_LOSS
        await old_code.describe(written_by_new)
    assert store._entries[written_by_new].fields[b"status"] == b"running"


def test_version_1_records_are_refused_with_a_clear_reason() -> None:
    with pytest.raises(Exception, match="version 1 records are from before"):
        codec.check_version("k", b"1")


# -- 5. retries and final failures -----------------------------------------------------------------------------


async def test_a_request_that_failed_unavailable_runs_again_under_the_same_id() -> None:
    backend = ScriptedBackend(available=False)
    store = MemoryStore()
    solver = _service(store, backend, "one")
    view = await solver.submit(spec("retry-me"), "acme", idempotent=True)
    with pytest.raises(Exception) as raised:
        await solver.wait(view.key)
    assert isinstance(getattr(raised.value, "cause", raised.value), BackendUnavailable)
    backend.available = True
    again = await solver.submit(spec("retry-me"), "acme", idempotent=True)
    done = await solver.wait(again.key)
    assert done.status is Status.SUCCEEDED and done.result is not None and done.result.outcome.answer == "18"
    assert (await store.read(view.key)).attempt == 2  # type: ignore[union-attr]


async def test_a_final_failure_is_returned_again_not_rerun() -> None:
    backend = ScriptedBackend()
    solver = _service(MemoryStore(), backend, "one")
    view = await solver.submit(spec("late", deadline_s=0.001, text="[[slow:0.05]] Q"), "acme", idempotent=True)
    with pytest.raises(SolveInterrupted):
        await solver.wait(view.key)
    calls = len(backend.requests)
    await solver.submit(spec("late", deadline_s=0.001, text="[[slow:0.05]] Q"), "acme", idempotent=True)
    with pytest.raises(SolveInterrupted):
        await solver.wait(view.key)
    assert len(backend.requests) == calls


# -- 6. the record vanishes while the request runs -------------------------------------------------------------


async def test_a_record_lost_mid_run_answers_unavailable_with_the_partial_result() -> None:
    store = MemoryStore(lease_s=0.3)
    solver = _service(store, ScriptedBackend(), "one")
    view = await solver.submit(spec("lost", text="[[slow:0.02]] How many dollars?"), "acme", idempotent=True)
    await asyncio.sleep(0.5)
    del store._entries[view.key]  # Redis restarted without its data
    with pytest.raises(SolveInterrupted) as raised:
        await solver.wait(view.key)
    assert isinstance(raised.value.cause, StoreUnavailable) and "vanished" in str(raised.value)
    assert raised.value.partial is not None and raised.value.partial.usage.path_tokens > 0


# -- 5. the model catalog ---------------------------------------------------------------------------------------


async def test_an_unknown_model_is_invalid_argument_at_admission_and_nothing_is_stored(tmp_path: Path) -> None:
    store = MemoryStore()
    backend = ScriptedBackend(catalog=frozenset({"scripted", "other"}))
    solver = _service(store, backend, "one")
    for model in ("preprocessing", "../../etc/passwd"):
        with pytest.raises(InvalidArgument, match="serves no model"):
            await solver.submit(spec("m1", model=model), "acme", idempotent=True)
    assert await store.read(RequestKey("acme", "m1")) is None and not backend.requests
    assert (await solver.wait((await solver.submit(spec("m2", model="other"), "acme", idempotent=True)).key)).model
    allowlisted = SolveService(replace(SETTINGS, backend_models={"scripted": frozenset({"other"})}),
                               {"scripted": ScriptedBackend()}, MemoryStore())
    with pytest.raises(InvalidArgument, match="serves no model 'scripted'"):
        await allowlisted.submit(spec("m3", model="scripted"), "acme", idempotent=True)
    tenants = tmp_path / "tenants.json"
    tenants.write_text(json.dumps({"tenants": {"acme": {"models": ["scripted"]}}}))
    per_tenant = SolveService(SETTINGS, {"scripted": backend}, MemoryStore(), policies=TenantPolicies(str(tenants)))
    with pytest.raises(InvalidArgument, match="tenant 'acme'"):
        await per_tenant.submit(spec("m4", model="other"), "acme", idempotent=True)


# -- 7. fair sharing ---------------------------------------------------------------------------------------------


async def test_a_flooding_tenant_does_not_starve_a_single_call_of_another() -> None:
    queue = FairQueue(slots=2)
    order: list[str] = []
    release = asyncio.Event()

    async def call(tenant: str, weight: int = 1) -> None:
        async with queue.slot(tenant, weight):
            order.append(tenant)
            await release.wait()

    flood = [asyncio.create_task(call("flood")) for _ in range(50)]
    await asyncio.sleep(0)
    light = asyncio.create_task(call("light"))
    await asyncio.sleep(0)
    assert order == ["flood", "flood"] and queue.waiting == 49
    release.set()
    await asyncio.gather(*flood, light)
    assert order.index("light") <= 3  # next after the calls already running, not after 48 queued ones


async def test_slots_go_to_tenants_in_proportion_to_their_weights() -> None:
    queue = FairQueue(slots=1)
    order: list[str] = []
    gate = asyncio.Event()

    async def call(tenant: str, weight: int) -> None:
        async with queue.slot(tenant, weight):
            order.append(tenant)
            await gate.wait()

    first = asyncio.create_task(call("warm", 1))
    await asyncio.sleep(0)
    tasks = [asyncio.create_task(call("heavy", 3)) for _ in range(30)]
    tasks += [asyncio.create_task(call("light", 1)) for _ in range(30)]
    await asyncio.sleep(0)
    gate.set()
    await asyncio.gather(first, *tasks)
    window = order[1:21]
    assert 14 <= window.count("heavy") <= 16  # 3 : 1


async def test_a_cancelled_waiter_gives_its_turn_away() -> None:
    queue = FairQueue(slots=1)
    gate = asyncio.Event()

    async def hold() -> None:
        async with queue.slot("a"):
            await gate.wait()

    holder = asyncio.create_task(hold())
    await asyncio.sleep(0)
    waiter = asyncio.create_task(hold())
    await asyncio.sleep(0)
    waiter.cancel()
    gate.set()
    await holder
    async with asyncio.timeout(1):
        async with queue.slot("b"):
            pass


def test_tenant_weights_and_models_are_read_from_the_tenants_file_and_bounded(tmp_path: Path) -> None:
    tenants = tmp_path / "tenants.json"
    tenants.write_text(json.dumps({"tenants": {"acme": {"weight": 3, "models": ["a", "b"]}}}))
    policy = TenantPolicies(str(tenants)).of("acme")
    assert (policy.weight, policy.models) == (3, frozenset({"a", "b"}))
    assert TenantPolicies(str(tenants)).of("other").weight == 1
    for bad in ({"weight": 0}, {"weight": 1001}, {"models": "a"}, {"models": [""]}):
        tenants.write_text(json.dumps({"tenants": {"acme": bad}}))
        with pytest.raises(InvalidArgument, match=r"tenants\.acme\.(weight|models)"):
            TenantPolicies(str(tenants)).of("acme")


async def test_a_fair_backend_frees_its_slot_when_the_call_ends() -> None:
    from certa.core.types import GenerationRequest, SamplingParams
    from certa.runtime.fair_queue import FairBackend

    queue = FairQueue(slots=1)
    backend = FairBackend(ScriptedBackend(), queue, "acme", 1)
    request = GenerationRequest(("How many dollars?",), max_tokens=5, sampling=SamplingParams())
    for _ in range(3):  # with one slot, a slot kept past its call would block the second call forever
        async with asyncio.timeout(5):
            assert [delta async for delta in backend.stream(request, "")][-1].finish is not None
    assert queue.waiting == 0
