"""Checkpoints by journal: a driver rebuilt from the journal of an interrupted run finishes it exactly as an
uninterrupted run would, without generating any recorded outcome again."""

from __future__ import annotations

import pytest

from certa.core.allocator import AllocatorConfig, BatchBudget
from certa.core.commands import AskPool, QuestionFinished
from certa.core.errors import BackendError, CorruptState, SolveInterrupted
from certa.core.report import Resumed, RuntimeEvent, SolveReport
from certa.core.stop_rules import CertaindexRule
from certa.core.strategies import (
    BatchSpec,
    DynasorConfig,
    MajorityVoteSpec,
    PlainSpec,
    SelfConsistencySpec,
    build_batch,
    build_strategy,
)
from certa.core.types import ProbeRecord, SamplingParams
from certa.runtime.driver import Driver
from certa.runtime.journal import Reply, ReplyKind, decode_reply, encode_reply
from certa.testing.scripted_backend import ScriptedBackend

pytestmark = pytest.mark.unit

PROMPT = ("Janet's ducks? [[confident-after:150]]\n",)
CONFIG = DynasorConfig(chunk_tokens=16, certainty_threshold=3, probe_tokens=8)
# Without early exits no call is cancelled, so how many tokens each run spends does not depend on timing.
NO_EXIT = DynasorConfig(chunk_tokens=16, certainty_threshold=3, probe_tokens=8, early_exit=False)
SAMPLED = SamplingParams(temperature=0.7, seed=5)


def by_sample(probe: ProbeRecord) -> tuple[int, int]:
    return probe.sample_index, probe.position_tokens


async def run(
    spec: object, replay: tuple[Reply, ...] = (), attempt: int = 0
) -> tuple[SolveReport, list[Reply], list[RuntimeEvent], ScriptedBackend]:
    backend = ScriptedBackend()
    journal: list[Reply] = []
    events: list[RuntimeEvent] = []

    async def checkpoint(reply: Reply) -> bool:
        journal.append(decode_reply("test", len(journal), encode_reply(reply)))  # through the stored form
        return False

    driver = Driver(
        backend,
        "m",
        token_budget=400,
        on_event=events.append,
        replay=replay,
        checkpoint=checkpoint,
        resumed_attempt=attempt,
    )
    report = await driver.run(build_strategy(spec, PROMPT, 400, SAMPLED))  # type: ignore[arg-type]
    return report, journal, events, backend


@pytest.mark.parametrize("spec", [NO_EXIT, MajorityVoteSpec(n=3, inner=NO_EXIT)], ids=["dynasor", "vote-of-3"])
@pytest.mark.parametrize("cut", [1, 5, 12])
async def test_a_run_resumed_from_any_checkpoint_ends_as_the_uninterrupted_run(spec: object, cut: int) -> None:
    whole, journal, _, first_backend = await run(spec)
    assert len(journal) > cut
    resumed, _, events, backend = await run(spec, replay=tuple(journal[:cut]), attempt=2)
    done, redone = whole.outcome, resumed.outcome
    assert (redone.answer, redone.text, redone.stop_reason) == (done.answer, done.text, done.stop_reason)
    assert resumed.usage == whole.usage  # replayed outcomes count once, as they did
    # Samples run side by side, so how their probes interleave depends on timing; each sample's history does not.
    assert sorted(resumed.probes, key=by_sample) == sorted(whole.probes, key=by_sample)
    # Nothing recorded is generated again: only the calls after the checkpoint (and those in flight at it) ran.
    assert len(backend.requests) < len(first_backend.requests)
    assert set(map(id, backend.requests)).isdisjoint(map(id, first_backend.requests))
    [resumed_event] = [event for event in events if isinstance(event, Resumed)]
    assert resumed_event.attempt == 2 and events.index(resumed_event) == 0


@pytest.mark.parametrize("spec", [CONFIG, MajorityVoteSpec(n=3, inner=CONFIG)], ids=["dynasor", "vote-of-3"])
async def test_a_whole_journal_with_cancelled_chunks_replays_without_any_call(spec: object) -> None:
    whole, journal, _, _ = await run(spec)
    assert ReplyKind.CANCEL in {reply.kind for reply in journal}  # early exits cancelled in-flight chunks
    replayed, later, _, backend = await run(spec, replay=tuple(journal), attempt=2)
    assert backend.requests == [] and later == []
    assert (replayed.outcome.answer, replayed.outcome.text, replayed.usage, replayed.probes) == (
        whole.outcome.answer,
        whole.outcome.text,
        whole.usage,
        whole.probes,
    )


async def test_the_resumed_event_says_how_much_of_each_path_the_checkpoint_holds() -> None:
    _, journal, _, _ = await run(CONFIG)
    first_path_chunk = next(reply for reply in journal if reply.outcome.tokens == 16)
    _, _, events, _ = await run(CONFIG, replay=(first_path_chunk,), attempt=2)
    resumed = events[0]
    assert isinstance(resumed, Resumed)
    [path] = resumed.paths
    assert (path.sample_index, path.text_chars, path.path_tokens) == (0, len(first_path_chunk.outcome.text), 16)


async def test_a_journal_that_does_not_fit_the_strategy_is_corrupt_state() -> None:
    _, journal, _, _ = await run(CONFIG)
    wrong = Reply(ReplyKind.CANCEL, journal[0].handle, journal[0].outcome)
    with pytest.raises(SolveInterrupted) as raised:
        await run(CONFIG, replay=(wrong,))
    assert isinstance(raised.value.cause, CorruptState) and "does not match the strategy" in str(raised.value)


def test_journal_entries_that_are_not_ours_name_the_key() -> None:
    with pytest.raises(CorruptState, match=r"'req:journal'.*entry 3"):
        decode_reply("req:journal", 3, b'{"kind": "wait"}')


BATCH = BatchSpec(
    questions=(("fine", "Fine?"), ("broken", "Broken?")),
    inner=PlainSpec(),
    allocator=AllocatorConfig(budget=BatchBudget(samples=6), sample_max_tokens=400, per_question_cap=3, warmup=3),
    max_in_flight=2,
)
BATCH_PROMPTS = [("Fine? [[answer:7]]\n",), ("Broken? [[fail-after:20]]\n",)]


async def run_batch(
    replay: tuple[Reply, ...] = (),
) -> tuple[SolveReport, list[Reply], list[RuntimeEvent], ScriptedBackend]:
    backend = ScriptedBackend()
    journal: list[Reply] = []
    events: list[RuntimeEvent] = []

    async def checkpoint(reply: Reply) -> bool:
        journal.append(decode_reply("test", len(journal), encode_reply(reply)))
        return False

    driver = Driver(backend, "m", token_budget=400, on_event=events.append, replay=replay, checkpoint=checkpoint)
    report = await driver.run(build_batch(BATCH, BATCH_PROMPTS, 400, SAMPLED))
    return report, journal, events, backend


async def test_a_failed_call_of_a_batch_is_journaled_and_replays_as_the_same_question_error() -> None:
    whole, journal, events, _ = await run_batch()
    assert whole.complete and whole.outcome.batch is not None and whole.outcome.batch.failed == 1
    finished = {event.question_id: event for event in events if isinstance(event, QuestionFinished)}
    assert finished["fine"].error is None and finished["fine"].result.answer == "7"
    assert isinstance(finished["broken"].error, BackendError) and finished["broken"].result.answer == ""
    [failed] = [reply for reply in journal if reply.kind is ReplyKind.FAIL]
    assert isinstance(failed.error, BackendError) and str(failed.error) == str(finished["broken"].error)
    assert failed.outcome.tokens == 20  # what the call generated before it failed, counted
    replayed, later, _, backend = await run_batch(replay=tuple(journal))
    assert backend.requests == [] and later == []
    assert (replayed.outcome.batch, replayed.usage) == (whole.outcome.batch, whole.usage)


async def test_pool_answers_are_journaled_and_a_replay_asks_the_pool_nothing() -> None:
    spec = SelfConsistencySpec(PlainSpec(), CertaindexRule(0.99, 2), wave_size=2, max_samples=8, pool="chat")
    prompt = ("[[vote:18,7,9,11]] Q\n",)
    asked: list[AskPool] = []

    async def pool(ask: AskPool) -> int:
        asked.append(ask)
        return ask.samples if ask.drawn < 4 else 0

    async def run_pooled(replay: tuple[Reply, ...]) -> tuple[SolveReport, list[Reply], ScriptedBackend]:
        backend, journal = ScriptedBackend(), []

        async def checkpoint(reply: Reply) -> bool:
            journal.append(decode_reply("test", len(journal), encode_reply(reply)))
            return False

        driver = Driver(backend, "m", token_budget=400, replay=replay, checkpoint=checkpoint, pool=pool)
        return await driver.run(build_strategy(spec, prompt, 400, SAMPLED)), journal, backend

    whole, journal, _ = await run_pooled(())
    assert len(whole.outcome.samples) == 4 and whole.outcome.stop_reason.value == "budget"
    assert [reply.granted for reply in journal if reply.kind is ReplyKind.POOL] == [2, 2, 0]
    asked.clear()
    replayed, later, backend = await run_pooled(tuple(journal))
    assert asked == [] and backend.requests == [] and later == []
    done, redone = whole.outcome, replayed.outcome
    assert (redone.answer, replayed.usage, redone.stop_detail) == (done.answer, whole.usage, done.stop_detail)
