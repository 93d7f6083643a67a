"""Text events are coalesced before they are stored and streamed: a client reads the same text in the same order,
fewer events carry it, and a resumption neither loses text a client received nor replays any twice."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from certa.config import Settings, StoreSettings
from certa.core.commands import Decision
from certa.core.report import Resumed, RuntimeEvent, TextDelta
from certa.core.spec import SolveSpec
from certa.core.strategies import DynasorConfig, PlainSpec
from certa.core.types import FinishReason, Outcome, SamplingParams, Segment, StopReason
from certa.runtime.journal import Recorder, Reply, ReplyKind
from certa.service import Finished, FollowedEvent, SolveService
from certa.store.requests import values
from certa.store.requests.memory import MemoryStore
from certa.store.requests.port import Append, Failure, RequestKey, RequestRecord, Status
from certa.testing.scripted_backend import ScriptedBackend

pytestmark = pytest.mark.unit

SETTINGS = Settings(prompt_template="raw", store=StoreSettings(lease_s=0.3, sweep_interval_s=3600))
SLOW = "[[slow:0.004]] How many dollars?"


async def test_coalescing_joins_each_sample_s_consecutive_text_and_keeps_every_other_event_in_place() -> None:
    store = MemoryStore()
    key = RequestKey("acme", "coalesced")
    await store.create(RequestRecord(key, "f", b"{}", "prompt", "plain", "scripted", "m", 1.0, 2.0), "replica-a")
    recorder = Recorder(store, key, "replica-a")
    decision = Decision(0, StopReason.CERTAIN, "18")
    recorder.event(TextDelta(0, "Ja", 2))
    recorder.text(1, "Th", 2)
    recorder.text(0, "net", 5)
    recorder.event(TextDelta(1, "e", 3))
    recorder.event(decision)
    recorder.text(0, "'s", 7)
    await recorder.checkpoint(Reply(ReplyKind.WAIT, 0, Outcome(Segment("Janet's"), 7, FinishReason.LENGTH)))
    recorder.text(0, " pay", 9)  # after the journal entry: an event of its own
    await recorder.checkpoint(Reply(ReplyKind.WAIT, 1, Outcome(Segment(" pay"), 2, FinishReason.LENGTH)))
    await recorder.close()
    stored = [values.decode(entry.event, RuntimeEvent, "test") for entry in await store.events(key, "")]
    assert stored == [
        TextDelta(0, "Janet", 5), TextDelta(1, "The", 3), decision, TextDelta(0, "'s", 7), TextDelta(0, " pay", 9)
    ]


def spec(request_id: str, text: str) -> SolveSpec:
    return SolveSpec(
        request_id=request_id,
        text=text,
        raw_prompt=False,
        strategy=replace(DynasorConfig(chunk_tokens=16, certainty_threshold=2, probe_tokens=8), early_exit=False),
        sampling=SamplingParams(),
        token_budget=400,
        deadline_s=30.0,
        backend="scripted",
        model="",
    )


def service(store: MemoryStore) -> SolveService:
    return SolveService(SETTINGS, {"scripted": ScriptedBackend()}, store)  # type: ignore[arg-type]


def shown_text(events: list[FollowedEvent]) -> str:
    """What a client shows: text events appended, cut back to the checkpoint at each `Resumed`."""
    text = ""
    for event in events:
        if isinstance(event, TextDelta) and event.sample_index == 0:
            text += event.text
        elif isinstance(event, Resumed):
            text = text[: next((path.text_chars for path in event.paths if path.sample_index == 0), 0)]
    return text


async def test_a_stream_carries_the_whole_text_in_fewer_events_than_tokens() -> None:
    solver = service(MemoryStore())
    view = await solver.submit(replace(spec("plain", SLOW), strategy=PlainSpec()), "acme", idempotent=False)
    events = [event async for event in solver.follow(view.key)]
    final = events[-1]
    assert isinstance(final, Finished) and final.result is not None
    texts = [event for event in events if isinstance(event, TextDelta)]
    assert "".join(event.text for event in texts) == final.result.outcome.text
    assert [event.path_tokens for event in texts] == sorted(event.path_tokens for event in texts)
    assert texts[-1].path_tokens == final.result.usage.path_tokens
    assert 1 < len(texts) < final.result.usage.path_tokens


async def test_after_a_resumption_no_text_a_client_received_is_lost_and_none_is_replayed_twice() -> None:
    store = MemoryStore(lease_s=0.3)
    first = service(store)
    view = await first.submit(spec("resumed", SLOW), "acme", idempotent=True)
    received: list[FollowedEvent] = []

    async def watch() -> None:
        async for event in first.follow(view.key):
            received.append(event)

    watcher = asyncio.create_task(watch())
    async with asyncio.timeout(10):
        while sum(isinstance(event, TextDelta) for event in received) < 6:
            await asyncio.sleep(0.005)
    await asyncio.sleep(0.03)  # text streamed after the last checkpoint reaches the store too
    await first.drain(timeout_s=0.0)  # the replica hands the request over under its client ...
    await asyncio.sleep(0.5)  # ... which reads what was written before the lease was released, then gives up
    watcher.cancel()
    seen_before = shown_text(received)
    assert seen_before and not any(isinstance(event, Finished) for event in received)

    second = service(store)
    replayed = [event async for event in second.follow(view.key)]
    final = replayed[-1]
    assert isinstance(final, Finished) and final.result is not None
    done = await second.wait(view.key)
    assert done.status is Status.SUCCEEDED and done.attempt == 2
    result_text = final.result.outcome.text
    # Nothing the client saw is contradicted (the script is deterministic: redone text is the same text) ...
    assert result_text.startswith(seen_before)
    # ... and the replayed stream, cut at its `Resumed`, shows the result once: no text lost, none twice.
    assert shown_text(replayed) == result_text
    resumed = [event for event in replayed if isinstance(event, Resumed)]
    assert len(resumed) == 1
    # The stream before `Resumed` is a prefix of the result holding at least the consumed calls' text (a chunk
    # running beside the checkpointed probe may add some, which `Resumed` cuts): no coalesced event was dropped
    # or reaches past the checkpoint the resumption cut the stream at.
    before = replayed[: replayed.index(resumed[0])]
    kept = "".join(event.text for event in before if isinstance(event, TextDelta))
    checkpointed = resumed[0].paths[0].text_chars
    assert result_text.startswith(kept) and len(kept) >= checkpointed
    # (and the client had been streamed text past that checkpoint, which the resumption redid)
    assert len(seen_before) > checkpointed


class GatedStore(MemoryStore):
    """Applies its first append, then holds the reply until `gate` opens (as Redis applies a command whose caller
    is cancelled meanwhile); keeps every append it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.appends: list[Append] = []

    async def append(self, key: RequestKey, owner: str, append: Append) -> bool:
        self.appends.append(append)
        cancel = await super().append(key, owner, append)
        if len(self.appends) == 1:
            await self.gate.wait()
        return cancel


async def in_flight(store: GatedStore, writes: int) -> None:
    async with asyncio.timeout(5):
        while len(store.appends) < writes:
            await asyncio.sleep(0)


async def test_a_batch_coalesces_text_on_each_side_of_a_journal_entry_never_across_it() -> None:
    store = GatedStore()
    key = RequestKey("acme", "gated")
    record = RequestRecord(key, "f", b"{}", "prompt", "plain", "scripted", "m", 1.0, 2.0)
    await store.create(record, "replica-a")
    recorder = Recorder(store, key, "replica-a")
    reply = Reply(ReplyKind.WAIT, 0, Outcome(Segment("abc"), 3, FinishReason.LENGTH))
    recorder.event(TextDelta(0, "a", 1))
    first = asyncio.create_task(recorder.checkpoint(reply))
    await in_flight(store, 1)  # the first write is held by the store
    for index, text in enumerate("bc", start=2):
        recorder.event(TextDelta(0, text, index))
    second = asyncio.create_task(recorder.checkpoint(replace(reply, handle=1)))
    for _ in range(5):
        await asyncio.sleep(0)  # the second checkpoint's entry is queued
    for index, text in enumerate("de", start=4):
        recorder.event(TextDelta(0, text, index))  # produced after the second entry, by a call still running
    store.gate.set()
    await asyncio.gather(first, second)
    await recorder.close()
    batches = [
        ([values.decode(event, TextDelta, "test").text for event in append.events], append.checkpointed_events)
        for append in store.appends
    ]
    assert batches == [(["a"], 1), (["bc", "de"], 1)]
    assert [entry.event for entry in await store.events(key, "")] == [a for b in store.appends for a in b.events]


async def test_a_checkpoint_cancelled_mid_write_still_counts_it_so_the_finish_is_applied() -> None:
    store = GatedStore()
    key = RequestKey("acme", "deadline")
    await store.create(RequestRecord(key, "f", b"{}", "prompt", "plain", "scripted", "m", 1.0, 2.0), "replica-a")
    recorder = Recorder(store, key, "replica-a")
    checkpoint = asyncio.create_task(
        recorder.checkpoint(Reply(ReplyKind.WAIT, 0, Outcome(Segment("abc"), 3, FinishReason.LENGTH)))
    )
    await in_flight(store, 1)  # the write is held by the store when the run's deadline cancels the checkpoint
    checkpoint.cancel()
    store.gate.set()
    await asyncio.gather(checkpoint, return_exceptions=True)
    await recorder.finish(Status.FAILED, b"partial", Failure("deadline", "deadline exceeded"))
    stored = await store.read(key)
    assert stored is not None and (stored.status, stored.summary) == (Status.FAILED, b"partial")
