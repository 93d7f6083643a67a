"""Checkpoints by journal: what a run records so another replica can rebuild it exactly.

A strategy is a pure generator, so its state after N commands is a function of the replies it received. The
journal therefore holds one entry per backend call the strategy consumed (`Wait`/`WaitAny` → the outcome, or the
error and the partial outcome of a call that failed; `Cancel` → the partial outcome), in order; a replica that
takes the request over replays these replies into a fresh generator (no backend call, no token counted again),
re-issues the calls that were still running, and goes on. The entries are the checkpoint: text and token ids of
every segment, tokens spent by purpose (the driver re-derives the totals), and, through the probes the strategy
emits while replaying, the probe history.

`Recorder` writes one run's journal entries, its events and the latest partial result to the store, in order and
in batches: a checkpoint waits until its entry is stored (a strategy never continues past an unrecorded round),
events go out as soon as the previous write returns. A write that fails is reported at the next checkpoint or at
the finish, so a run never succeeds with a checkpoint missing.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from certa.core.errors import CertaError, CorruptState
from certa.core.types import FinishReason, Outcome, Segment, TokenLogProbs
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
    ) -> None:
        self._store = store
        self._key = key
        self._owner = owner
        self._writes = writes
        self._summarize = summarize
        self._on_written = on_written
        self._pending: list[tuple[bool, bytes]] = []  # (is a journal entry, payload), in order
        self._lock = asyncio.Lock()
        self._failure: CertaError | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._cancel_requested = False

    def event(self, event: bytes) -> None:
        """Queue an event; it is written with the next batch, which starts as soon as the store is free."""
        self._pending.append((False, event))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.ensure_future(self._flush_in_background())

    async def checkpoint(self, reply: Reply) -> bool:
        """Store a journal entry (with the events before it and the partial result); True if cancel was asked."""
        self._pending.append((True, encode_reply(reply)))
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
        self._cancel_requested = await self._store.renew(self._key, self._owner) or self._cancel_requested
        return self._cancel_requested

    async def close(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            await asyncio.gather(self._flusher, return_exceptions=True)

    async def _flush_in_background(self) -> None:
        try:
            await self._flush()
        except CertaError as error:
            self._failure = self._failure or error  # reported by the next checkpoint or the finish

    async def _flush(self) -> None:
        async with self._lock:
            if self._failure is not None:
                raise self._failure
            if not self._pending:
                return
            batch, self._pending = self._pending, []
            last_entry = max((index for index, (is_entry, _) in enumerate(batch) if is_entry), default=-1)
            append = Append(
                write=self._writes + 1,
                journal=[payload for is_entry, payload in batch if is_entry],
                events=[payload for is_entry, payload in batch if not is_entry],
                checkpointed_events=sum(1 for is_entry, _ in batch[: last_entry + 1] if not is_entry),
                summary=self._summarize() if last_entry >= 0 else None,
            )
            try:
                self._cancel_requested = (
                    await self._store.append(self._key, self._owner, append) or self._cancel_requested
                )
            except CertaError as error:
                self._failure = error
                raise
            self._writes += 1
        self._on_written()
