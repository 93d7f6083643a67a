"""Drive a strategy against a backend.

The driver executes the strategy's commands: each `Start` becomes an asyncio task streaming from the backend,
`Wait`/`WaitAny` await those tasks (or the request's cancellation), `Cancel` cancels a task and hands back what
it had generated. It enforces each sample's path-token budget (a `Start` is clamped to what is left), the deadline,
and cancellation, and it keeps the accounting: every token the backend reported, per purpose, including tokens of
calls that were cancelled. When the strategy returns, calls still in flight are cancelled. Each backend call runs
in its own GenAI CLIENT span (`text_completion MODEL`), and probes and decisions become events of the request's span
(`certa.observability.telemetry`).

A call that fails with a `CertaError` is thrown into the strategy as `CallFailed` at the `Wait`/`WaitAny` that
awaited it (a batch fails only that question); if the strategy lets it through, the run fails with the call's error.

Checkpoints (`certa.runtime.journal`): every outcome the strategy consumes is handed to `checkpoint` before the
strategy sees it. A driver built with the journal of an earlier run first replays it: the strategy receives the
recorded outcomes, calls it starts meanwhile are held back, and the ones that were still running when the journal
ends are then started for real. Replayed outcomes count in the usage as they did before; nothing is re-generated.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, Generator, Sequence
from dataclasses import dataclass, field
from typing import Any

from certa.backends.port import Backend, Delta
from certa.core.commands import (
    AskPool,
    CallFailed,
    Cancel,
    Command,
    Emit,
    Handle,
    QuestionFinished,
    Start,
    Wait,
    WaitAny,
)
from certa.core.errors import BackendError, CertaError, CorruptState, DeadlineExceeded, SolveInterrupted
from certa.core.report import Interrupted, PathProgress, Resumed, RuntimeEvent, SolveReport, TextDelta, Usage
from certa.core.types import (
    FinishReason,
    GenerationRequest,
    Outcome,
    ProbeRecord,
    Purpose,
    Segment,
    StrategyResult,
    TokenLogProbs,
)
from certa.observability.telemetry import Telemetry
from certa.runtime.journal import Reply, ReplyKind

log = logging.getLogger(__name__)

EventSink = Callable[[RuntimeEvent], None]
TextSink = Callable[[int, str, int], None]
"""Text a path call streamed: sample index, text, path tokens of the sample so far (a `TextDelta`'s fields; a sink
of its own so the per-token path builds no event object)."""
Checkpoint = Callable[[Reply], Awaitable[bool]]
"""Stores one journal entry; returns True when the request's cancellation was asked for (from any replica)."""
PoolGate = Callable[[AskPool], Awaitable[int]]
"""Asks the request's budget pool for a wave (waiting as the pool says); the samples granted."""


class _Cancelled(Exception):
    """The request was cancelled by its client (internal to the driver)."""


@dataclass
class _Call:
    """One backend call and what it has produced so far."""

    request: GenerationRequest
    texts: list[str] = field(default_factory=list)
    token_ids: list[int] | None = field(default_factory=list)
    tokens: int = 0
    prompt_tokens: int = 0
    cached_prompt_tokens: int = 0
    finish: FinishReason | None = None
    settled: bool = False
    task: asyncio.Task[Outcome] | None = None  # None while held back by a replay
    chars: int = 0  # characters of text so far, counted while its log-probs are kept
    fitted_max_tokens: int | None = None
    log_probs: list[float] | None = field(default_factory=list)  # None: asked for, and the backend sent none
    text_ends: list[int] = field(default_factory=list)

    def take_log_probs(self, delta: Delta) -> None:
        """Keep the delta's log-probs, each token ending where the call's text now ends. A delta with text and
        no log-probs means the backend does not return them (the outcome then reports none)."""
        if not self.request.log_probs or self.log_probs is None:
            return
        self.chars += len(delta.text)
        if delta.log_probs is None:
            if delta.text:
                self.log_probs = None
            return
        self.log_probs.extend(delta.log_probs)
        self.text_ends.extend([self.chars] * len(delta.log_probs))

    def outcome(self, finish: FinishReason) -> Outcome:
        ids = tuple(self.token_ids) if self.token_ids is not None else None
        log_probs = None
        if self.request.log_probs and self.log_probs is not None:
            log_probs = TokenLogProbs(tuple(self.log_probs), tuple(self.text_ends))
        return Outcome(
            segment=Segment("".join(self.texts), ids),
            tokens=self.tokens,
            finish=finish,
            prompt_tokens=self.prompt_tokens,
            cached_prompt_tokens=self.cached_prompt_tokens,
            log_probs=log_probs,
            fitted_max_tokens=self.fitted_max_tokens,
        )


class Driver:
    """Runs one strategy against one backend model. Create one driver per request."""

    def __init__(
        self,
        backend: Backend,
        model: str,
        *,
        token_budget: int,
        on_event: EventSink | None = None,
        on_text: TextSink | None = None,
        clock: Callable[[], float] = time.monotonic,
        telemetry: Telemetry | None = None,
        replay: Sequence[Reply] = (),
        checkpoint: Checkpoint | None = None,
        resumed_attempt: int = 0,
        elapsed_before_s: float = 0.0,
        log_content: bool = False,
        pool: PoolGate | None = None,
    ) -> None:
        self._backend = backend
        self._pool = pool
        self._telemetry = telemetry or Telemetry.disabled()
        self._model = model
        self._token_budget = token_budget
        self._on_event = on_event or (lambda event: None)
        self._on_text = on_text or (lambda sample, text, tokens: self._on_event(TextDelta(sample, text, tokens)))
        self._clock = clock
        self._calls: dict[Handle, _Call] = {}
        self._next_handle = 0
        self._usage = Usage()
        self._probes: list[ProbeRecord] = []
        self._path_committed: defaultdict[int, int] = defaultdict(int)  # spent + in flight, per sample
        self._path_streamed: defaultdict[int, int] = defaultdict(int)  # path tokens streamed, per sample
        self._path_text: defaultdict[int, list[str]] = defaultdict(list)  # path calls consumed, per sample
        self._replay = deque(replay)
        self._checkpoint = checkpoint
        self._resumed_attempt = resumed_attempt  # announced by a `Resumed` event once the replay is done
        self._log_content = log_content  # probe answers in span attributes (the tenant opted in)
        self._elapsed_before_s = elapsed_before_s  # wall time of the earlier runs of a resumed request
        self._started_at = clock()

    async def run(
        self,
        strategy: Generator[Command, Any, StrategyResult],
        *,
        deadline_s: float | None = None,
        cancel: asyncio.Event | None = None,
    ) -> SolveReport:
        """Run to completion. A cancelled run returns a report whose outcome is `Interrupted` (`cancelled`).

        Raises `DeadlineExceeded` or `SolveInterrupted` (carrying the partial report) on a deadline or an error.
        Whatever ends the run, including an unexpected exception or the cancellation of the task running it, every
        backend call still in flight is cancelled first.
        """
        self._started_at = self._clock()
        self._start_held_calls()
        cancel = cancel or asyncio.Event()
        cancel_waiter = asyncio.ensure_future(cancel.wait())
        deadline = asyncio.timeout(deadline_s)
        try:
            async with deadline:
                result = await self._drive(strategy, cancel_waiter)
        except _Cancelled:
            await self._cancel_all()
            return self._partial(cancelled=True)
        except CertaError as error:
            await self._cancel_all()
            raise SolveInterrupted(str(error), partial=self._partial(), cause=error) from error
        except TimeoutError as error:
            await self._cancel_all()
            if not deadline.expired():
                raise  # a TimeoutError from elsewhere is a bug to report, not the request's deadline
            raise DeadlineExceeded(f"deadline of {deadline_s:g}s exceeded", partial=self._partial()) from error
        except BaseException:
            await asyncio.shield(self._cancel_all())
            raise
        finally:
            cancel_waiter.cancel()
            strategy.close()
        await self._cancel_all()
        return self._report(result)

    def snapshot(self) -> SolveReport:
        """The partial report of the run so far (for `GetSolve` on a running request)."""
        return self._partial()

    async def _drive(
        self, strategy: Generator[Command, Any, StrategyResult], cancel_waiter: asyncio.Future[Any]
    ) -> StrategyResult:
        reply: Any = None
        failure: CallFailed | None = None
        while True:
            try:
                command = strategy.send(reply) if failure is None else strategy.throw(failure)
            except StopIteration as finished:
                return finished.value
            except CallFailed as uncaught:
                raise uncaught.error from None
            try:
                reply, failure = await self._execute(command, cancel_waiter), None
            except CallFailed as failed:
                reply, failure = None, failed

    async def _execute(self, command: Command, cancel_waiter: asyncio.Future[Any]) -> Any:
        if isinstance(command, Start):
            return self._start(command.request)
        if isinstance(command, Wait | WaitAny | Cancel | AskPool) and self._replay:
            return self._replayed(command)
        if isinstance(command, AskPool):
            granted = await self._ask_pool(command, cancel_waiter)
            await self._record(Reply.pool(granted))
            return granted
        if isinstance(command, Wait | WaitAny):
            handles = command.handles if isinstance(command, WaitAny) else (command.handle,)
            handle, outcome, error = await self._wait_any(handles, cancel_waiter)
            if error is not None:
                await self._record(Reply(ReplyKind.FAIL, handle.id, outcome, error))
                log.warning("backend call %d failed: %s", handle.id, error)
                raise CallFailed(handle, outcome, error)
            await self._record(Reply(ReplyKind.WAIT, handle.id, outcome))
            return (handle, outcome) if isinstance(command, WaitAny) else outcome
        if isinstance(command, Cancel):
            outcome = await self._cancel(command.handle)
            await self._record(Reply(ReplyKind.CANCEL, command.handle.id, outcome))
            return outcome
        if isinstance(command, Emit):
            event = command.event
            if self._replaying:
                if isinstance(event, ProbeRecord):
                    self._probes.append(event)  # the probe history as it was; its events were already sent
                return None
            if isinstance(event, ProbeRecord):
                chunk_index = sum(1 for probe in self._probes if probe.sample_index == event.sample_index)
                self._telemetry.probe(event, chunk_index, self._log_content)
                self._probes.append(event)
            elif isinstance(event, QuestionFinished):
                self._telemetry.question_finished(event)
            else:
                self._telemetry.decision(event)
            self._on_event(event)
            return None
        raise TypeError(f"unknown strategy command {command!r}")

    @property
    def _replaying(self) -> bool:
        return bool(self._replay)

    def _replayed(self, command: Wait | WaitAny | Cancel | AskPool) -> Any:
        """The recorded reply to `command`, accounted as the original call was."""
        reply = self._replay.popleft()
        if isinstance(command, AskPool) or reply.kind is ReplyKind.POOL:
            if not isinstance(command, AskPool) or reply.kind is not ReplyKind.POOL:
                raise CorruptState(
                    "journal",
                    f"does not match the strategy: recorded {reply.kind}, the strategy asks {type(command).__name__}",
                )
            if not self._replay:
                self._start_held_calls()
            return reply.granted
        handle = Handle(reply.handle)
        expected = (ReplyKind.CANCEL,) if isinstance(command, Cancel) else (ReplyKind.WAIT, ReplyKind.FAIL)
        awaited = command.handles if isinstance(command, WaitAny) else (command.handle,)
        if reply.kind not in expected or handle not in awaited or handle not in self._calls:
            raise CorruptState(
                "journal",
                f"does not match the strategy: recorded {reply.kind} of call {reply.handle}, "
                f"the strategy asks {type(command).__name__} of {[h.id for h in awaited]}",
            )
        call = self._calls.pop(handle)
        outcome = reply.outcome
        call.texts, call.tokens, call.finish = [outcome.text], outcome.tokens, outcome.finish
        call.prompt_tokens, call.cached_prompt_tokens = outcome.prompt_tokens, outcome.cached_prompt_tokens
        self._settle(call)
        if call.request.purpose is Purpose.PATH:
            self._path_streamed[call.request.sample_index] += outcome.tokens
            if reply.kind is not ReplyKind.CANCEL:
                self._path_text[call.request.sample_index].append(outcome.text)
        if not self._replay:
            self._start_held_calls()
        if reply.error is not None:
            raise CallFailed(handle, outcome, reply.error)
        return (handle, outcome) if isinstance(command, WaitAny) else outcome

    async def _ask_pool(self, ask: AskPool, cancel_waiter: asyncio.Future[Any]) -> int:
        if self._pool is None:
            raise RuntimeError("the strategy asked a budget pool, but the request has none")
        asking = asyncio.ensure_future(self._pool(ask))
        try:
            await asyncio.wait([asking, cancel_waiter], return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not asking.done():
                asking.cancel()
                await asyncio.wait([asking])
        if not asking.done() or asking.cancelled():
            raise _Cancelled
        return asking.result()

    def _start_held_calls(self) -> None:
        """Once the journal is replayed, run the calls that were in flight when it was written."""
        if self._replaying:
            return
        if self._resumed_attempt:
            paths = tuple(
                PathProgress(sample, sum(len(text) for text in self._path_text[sample]), self._path_streamed[sample])
                for sample in sorted(set(self._path_text) | set(self._path_streamed))
            )
            self._on_event(Resumed(self._resumed_attempt, paths))
            self._resumed_attempt = 0
        for call in self._calls.values():
            if call.task is None:
                call.task = asyncio.create_task(self._stream(call))

    async def _record(self, reply: Reply) -> None:
        if self._checkpoint is not None and await self._checkpoint(reply):
            raise _Cancelled

    def _start(self, request: GenerationRequest) -> Handle:
        handle = Handle(self._next_handle)
        self._next_handle += 1
        if request.purpose is Purpose.PATH:
            left = self._token_budget - self._path_committed[request.sample_index]
            if request.max_tokens > left:
                request = GenerationRequest(
                    request.prompt, left, request.sampling, request.purpose, request.sample_index, request.stop
                )
            self._path_committed[request.sample_index] += max(request.max_tokens, 0)
        call = _Call(request)
        self._calls[handle] = call
        if not self._replaying:
            call.task = asyncio.create_task(self._stream(call))
        return handle

    async def _stream(self, call: _Call) -> Outcome:
        """`_consume` inside the call's CLIENT span, the span the backend's metadata provider sends."""
        if call.request.max_tokens <= 0:  # nothing to generate: the backend is not called
            return await self._consume(call)
        with self._telemetry.backend_call(self._backend.name, self._model, call.request) as observed:
            try:
                return await self._consume(call)
            finally:
                observed.settle(call.tokens, call.prompt_tokens, call.finish)

    async def _consume(self, call: _Call) -> Outcome:
        """Take the call's deltas as they stream (once per token: the loop body is kept to what each one needs)."""
        request = call.request
        sample = request.sample_index
        is_path = request.purpose is Purpose.PATH
        on_text, path_streamed, texts = self._on_text, self._path_streamed, call.texts
        try:
            if request.max_tokens <= 0:
                return call.outcome(FinishReason.LENGTH)
            async for delta in self._backend.stream(request, self._model):
                texts.append(delta.text)
                call.take_log_probs(delta)
                call.tokens += delta.tokens
                if delta.token_ids is None or call.token_ids is None:
                    call.token_ids = None
                else:
                    call.token_ids.extend(delta.token_ids)
                if is_path:
                    path_streamed[sample] += delta.tokens
                    if delta.text:
                        on_text(sample, delta.text, path_streamed[sample])
                if delta.finish is not None:
                    call.finish = delta.finish
                    call.prompt_tokens = delta.prompt_tokens
                    call.cached_prompt_tokens = delta.cached_prompt_tokens
                    call.fitted_max_tokens = delta.fitted_max_tokens
            if call.finish is None:
                raise BackendError(self._backend.name, "the stream ended without a final response")
            return call.outcome(call.finish)
        finally:
            self._settle(call)

    def _settle(self, call: _Call) -> None:
        """Account a finished, failed or cancelled call exactly once."""
        if call.settled:
            return
        call.settled = True
        request = call.request
        usage = self._usage
        if request.purpose is Purpose.PATH:
            # Release the reservation, keep what was really generated.
            self._path_committed[request.sample_index] += call.tokens - max(request.max_tokens, 0)
        self._usage = Usage(
            prompt_tokens=usage.prompt_tokens + call.prompt_tokens,
            path_tokens=usage.path_tokens + (call.tokens if request.purpose is Purpose.PATH else 0),
            probe_tokens=usage.probe_tokens + (call.tokens if request.purpose is Purpose.PROBE else 0),
            cached_prompt_tokens=usage.cached_prompt_tokens + call.cached_prompt_tokens,
        )

    async def _wait_any(
        self, handles: tuple[Handle, ...], cancel_waiter: asyncio.Future[Any]
    ) -> tuple[Handle, Outcome, CertaError | None]:
        """The first of `handles` to finish: its outcome, or its partial outcome and the `CertaError` it failed
        with (any other exception is a bug and propagates)."""
        tasks = {handle: self._task(handle) for handle in handles}
        while True:
            for handle, task in tasks.items():
                if task.done():
                    error = task.exception()
                    if error is not None and not isinstance(error, CertaError):
                        raise error
                    call = self._calls.pop(handle)
                    outcome = call.outcome(FinishReason.ERROR) if error is not None else task.result()
                    if call.request.purpose is Purpose.PATH:
                        self._path_text[call.request.sample_index].append(outcome.text)
                    return handle, outcome, error
            if cancel_waiter.done():
                raise _Cancelled
            await asyncio.wait([*tasks.values(), cancel_waiter], return_when=asyncio.FIRST_COMPLETED)

    async def _cancel(self, handle: Handle) -> Outcome:
        task = self._task(handle)
        call = self._calls.pop(handle)
        task.cancel()
        await asyncio.wait([task])
        self._settle(call)  # a task cancelled before it ever ran has not settled its reservation
        if task.cancelled():
            return call.outcome(FinishReason.CANCELLED)
        error = task.exception()
        if error is not None:
            # The call failed before the strategy gave it up; its result is not needed, but the failure is reported.
            log.warning("a cancelled backend call had already failed: %s", error)
            return call.outcome(FinishReason.CANCELLED)
        return task.result()

    def _task(self, handle: Handle) -> asyncio.Task[Outcome]:
        call = self._calls.get(handle)
        if call is None or call.task is None:
            raise RuntimeError(f"strategy used unknown or already consumed handle {handle}")
        return call.task

    async def _cancel_all(self) -> None:
        """Cancel every call not consumed by the strategy; their text stays available for a partial report."""
        tasks = [call.task for call in self._calls.values() if call.task is not None and not call.task.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        for call in self._calls.values():
            self._settle(call)
            abandoned = call.task
            if abandoned is not None and not abandoned.cancelled() and abandoned.exception() is not None:
                log.warning("backend call abandoned by the run had failed: %s", abandoned.exception())

    def _elapsed(self) -> float:
        return self._elapsed_before_s + self._clock() - self._started_at

    def _partial(self, *, cancelled: bool = False) -> SolveReport:
        unconsumed = [
            "".join(call.texts)
            for call in self._calls.values()
            if call.request.purpose is Purpose.PATH and call.request.sample_index == 0
        ]
        return self._report(Interrupted("".join(self._path_text[0] + unconsumed), cancelled=cancelled))

    def _report(self, outcome: StrategyResult | Interrupted) -> SolveReport:
        return SolveReport(outcome, self._usage, tuple(self._probes), self._elapsed(), self._token_budget)
