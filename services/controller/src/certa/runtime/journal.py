"""Checkpoints by journal: what a run records so another replica can rebuild it exactly.

A strategy is a pure generator, so its state after N commands is a function of the replies it received. The
journal therefore holds one entry per backend call the strategy consumed (`Wait`/`WaitAny` → the outcome, or the
error and the partial outcome of a call that failed; `Cancel` → the partial outcome), in order; a replica that
takes the request over replays these replies into a fresh generator (no backend call, no token counted again),
re-issues the calls that were still running, and goes on. The entries are the checkpoint: text and token ids of
every segment, tokens spent by purpose (the driver re-derives the totals), and, through the probes the strategy
emits while replaying, the probe history.

`Recorder` writes one run's journal entries, its events and the latest partial result to the store, in order and
in batches, one store round trip per batch: a checkpoint waits until its entry is stored (a strategy never continues
past an unrecorded round) and carries every event queued before it; events queued between checkpoints go out on
their own at most `event_flush_s` later while a client follows the run on this replica (`followed`), at most
`idle_flush_s` later otherwise (a follower on another replica, or a client attaching later, reads them from the
store; with a model of ordinary speed, the next checkpoint comes first and carries them).

Text events are coalesced as they are queued: consecutive `TextDelta`s become one per sample (its text joined, its
token count the last one), never across a journal entry, another event or a batch, so a client reads the same text
in the same order and the checkpoint boundary a resumption cuts the stream at is where it was. The
partial result (`summarize`, O(text)) is written with a checkpoint at most every `summary_interval_s`: it only
serves readers on other replicas while the run goes on (a resumption rebuilds from the journal, the finish writes
the final one). A write that fails is reported at the next checkpoint or at the finish, so a run never succeeds
with a checkpoint missing.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from certa.core.errors import CertaError, CorruptState
from certa.core.report import RuntimeEvent, TextDelta
from certa.core.types import FinishReason, Outcome, Segment, TokenLogProbs
from certa.store.requests import values
from certa.store.requests.codec import failure_of, restore_error
from certa.store.requests.port import Append, Failure, Finish, RequestKey, StateStore, Status


class ReplyKind(StrEnum):
    WAIT = "wait"
    FAIL = "fail"  # the awaited call failed: `error`, and what it had produced
    CANCEL = "cancel"
    POOL = "pool"  # the budget pool's answer to a wave: `granted` samples


_NO_CALL = Outcome(Segment(""), 0, FinishReason.STOP)


@dataclass(frozen=True)
class Reply:
    """One journal entry: the outcome the strategy received for the call named by `handle`, or (`POOL`) the
    samples its budget pool granted."""

    kind: ReplyKind
    handle: int
    outcome: Outcome
    error: CertaError | None = None
    granted: int = 0

    @classmethod
    def pool(cls, granted: int) -> Reply:
        return cls(ReplyKind.POOL, -1, _NO_CALL, granted=granted)


def encode_reply(reply: Reply) -> bytes:
    outcome = reply.outcome
    return json.dumps(
        {
            "kind": reply.kind.value,
            "handle": reply.handle,
            "text": outcome.segment.text,
            "token_ids": list(outcome.segment.token_ids) if outcome.segment.token_ids is not None else None,
            "tokens": outcome.tokens,
            "finish": outcome.finish.value,
            "prompt_tokens": outcome.prompt_tokens,
            "cached_prompt_tokens": outcome.cached_prompt_tokens,
            # probes' log-probs: a resumed calibrated strategy must decide as the original run did
            **({"log_probs": [list(outcome.log_probs.log_probs), list(outcome.log_probs.text_ends)]}
               if outcome.log_probs is not None else {}),
            **({"fitted_max_tokens": outcome.fitted_max_tokens} if outcome.fitted_max_tokens is not None else {}),
            **({"error": _error_fields(reply.error)} if reply.error is not None else {}),
            **({"granted": reply.granted} if reply.kind is ReplyKind.POOL else {}),
        },
        separators=(",", ":"),
    ).encode()


def _log_probs(entry: list[list[float]] | None) -> TokenLogProbs | None:
    if entry is None:
        return None
    values, ends = entry
    return TokenLogProbs(tuple(float(v) for v in values), tuple(int(e) for e in ends))


def decode_reply(label: str, index: int, raw: bytes) -> Reply:
    try:
        entry = json.loads(raw)
        token_ids = entry["token_ids"]
        return Reply(
            kind=ReplyKind(entry["kind"]),
            handle=int(entry["handle"]),
            outcome=Outcome(
                segment=Segment(
                    str(entry["text"]), tuple(int(i) for i in token_ids) if token_ids is not None else None
                ),
                tokens=int(entry["tokens"]),
                finish=FinishReason(entry["finish"]),
                prompt_tokens=int(entry["prompt_tokens"]),
                cached_prompt_tokens=int(entry["cached_prompt_tokens"]),
                log_probs=_log_probs(entry.get("log_probs")),
                fitted_max_tokens=int(entry["fitted_max_tokens"]) if "fitted_max_tokens" in entry else None,
            ),
            error=restore_error(Failure(*entry["error"]), None) if "error" in entry else None,
            granted=int(entry.get("granted", 0)),
        )
    except (ValueError, KeyError, TypeError) as error:
        raise CorruptState(label, f"journal entry {index} is not a Certa checkpoint: {error}") from None


def _error_fields(error: CertaError) -> tuple[str, str]:
    failure = failure_of(error)
    return failure.kind, failure.message


EVENT_FLUSH_S = 0.05
"""How long an event may wait for the next checkpoint before it is written on its own, while a client follows here."""
IDLE_FLUSH_S = 1.0
"""The same when nobody follows the run on this replica."""
SUMMARY_INTERVAL_S = 1.0
"""How stale the stored partial result of a running request may be (readers on other replicas)."""

@dataclass
class _Text:
    """The text one sample streamed since the last other event or journal entry, merged as it arrives (text events
    are coalesced when queued: per token, one append, no event object)."""

    sample_index: int
    pieces: list[str]
    path_tokens: int

    def event(self) -> TextDelta:
        return TextDelta(self.sample_index, "".join(self.pieces), self.path_tokens)


_Pending = tuple[bool, "Reply | RuntimeEvent | _Text"]  # (is a journal entry, the entry or the event), in order


class Recorder:
    """The store writer of one run this replica owns."""

    def __init__(
        self,
        store: StateStore,
        key: RequestKey,
        owner: str,
        *,
        writes: int = 0,
        summarize: Callable[[], bytes] = lambda: b"",
        on_written: Callable[[], None] = lambda: None,
        followed: Callable[[], bool] = lambda: True,
        event_flush_s: float = EVENT_FLUSH_S,
        idle_flush_s: float = IDLE_FLUSH_S,
        summary_interval_s: float = SUMMARY_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._key = key
        self._owner = owner
        self._writes = writes
        self._summarize = summarize
        self._on_written = on_written
        self._followed = followed
        self._event_flush_s = event_flush_s
        self._idle_flush_s = idle_flush_s
        self._summary_interval_s = summary_interval_s
        self._clock = clock
        self._summarized_at: float | None = None
        self._pending: list[_Pending] = []
        self._texts: dict[int, _Text] = {}  # sample -> its text queued since the last other event or entry
        self._lock = asyncio.Lock()
        self._failure: CertaError | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._cancel_requested = False
        self._lease_extended = False  # a write extended the lease since the last renewal

    def event(self, event: RuntimeEvent) -> None:
        """Queue an event; it is written with the next checkpoint, or on its own a flush interval from now."""
        if isinstance(event, TextDelta):
            self.text(event.sample_index, event.text, event.path_tokens)
            return
        self._pending.append((False, event))
        self._texts.clear()
        self._flush_soon()

    def text(self, sample_index: int, text: str, path_tokens: int) -> None:
        """Queue text a path streamed (a `TextDelta`), joined to the sample's text queued since the last other event
        or journal entry: a client reads the same text in the same order, in fewer events."""
        queued = self._texts.get(sample_index)
        if queued is None:
            queued = self._texts[sample_index] = _Text(sample_index, [text], path_tokens)
            self._pending.append((False, queued))
        else:
            queued.pieces.append(text)
            queued.path_tokens = path_tokens
        self._flush_soon()

    def _flush_soon(self) -> None:
        if self._flusher is None or self._flusher.done():
            delay_s = self._event_flush_s if self._followed() else self._idle_flush_s
            self._flusher = asyncio.ensure_future(self._flush_in_background(delay_s))

    async def checkpoint(self, reply: Reply) -> bool:
        """Store a journal entry (with the events before it and the partial result); True if cancel was asked."""
        self._pending.append((True, reply))
        self._texts.clear()
        await self._flush()
        return self._cancel_requested

    async def finish(self, status: Status, summary: bytes, failure: Failure | None) -> None:
        """Write what is pending, then the outcome; the request's lease is released by the store."""
        await self._flush()
        async with self._lock:
            await self._store.finish(
                self._key, self._owner, Finish(write=self._writes + 1, status=status, summary=summary, failure=failure)
            )
            self._writes += 1
        self._on_written()

    async def release(self) -> None:
        """Write what is pending, then give the lease up so another replica resumes from the last checkpoint."""
        try:
            await self._flush()
        finally:
            await self._store.release(self._key, self._owner)

    async def renew(self) -> bool:
        """Keep the lease (the heartbeat); a write since the last renewal kept it already, so then only the sweep's
        index is refreshed."""
        extended, self._lease_extended = self._lease_extended, False
        renewed = await self._store.renew(self._key, self._owner, lease_extended=extended)
        self._cancel_requested = renewed or self._cancel_requested
        return self._cancel_requested

    async def close(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            await asyncio.gather(self._flusher, return_exceptions=True)

    async def _flush_in_background(self, delay_s: float) -> None:
        try:
            await asyncio.sleep(delay_s)
            await self._flush()
        except CertaError as error:
            self._failure = self._failure or error  # reported by the next checkpoint or the finish

    def _due_summary(self) -> bytes | None:
        now = self._clock()
        if self._summarized_at is not None and now - self._summarized_at < self._summary_interval_s:
            return None
        self._summarized_at = now
        return self._summarize()

    async def _flush(self) -> None:
        """Write what is pending. A caller cancelled meanwhile (the run's deadline) does not cancel the write: the
        store may have applied it, and the next write (the finish) must know its number to be applied at all."""
        writing = asyncio.ensure_future(self._write_pending())
        writing.add_done_callback(lambda done: done.cancelled() or done.exception())  # kept in `_failure`
        await asyncio.shield(writing)

    async def _write_pending(self) -> None:
        async with self._lock:
            if self._failure is not None:
                raise self._failure
            if not self._pending:
                return
            batch, self._pending = self._pending, []
            self._texts.clear()  # text streamed from now on goes to the next batch
            journal: list[bytes] = []
            events: list[bytes] = []
            checkpointed_events = 0
            for is_entry, item in batch:
                if is_entry:
                    assert isinstance(item, Reply)
                    checkpointed_events = len(events)
                    journal.append(encode_reply(item))
                else:
                    assert not isinstance(item, Reply)
                    events.append(values.encode(item.event() if isinstance(item, _Text) else item))
            append = Append(
                write=self._writes + 1,
                journal=journal,
                events=events,
                checkpointed_events=checkpointed_events,
                summary=self._due_summary() if journal else None,
            )
            try:
                self._cancel_requested = (
                    await self._store.append(self._key, self._owner, append) or self._cancel_requested
                )
            except CertaError as error:
                self._failure = error
                raise
            self._writes += 1
            self._lease_extended = True
        self._on_written()
