"""A synchronous stand-in for the runtime, for driving strategies with `gen.send()` and canned outcomes."""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

from certa.core.commands import AskPool, CallFailed, Cancel, Command, Emit, Handle, Start, Wait, WaitAny
from certa.core.errors import CertaError
from certa.core.types import FinishReason, GenerationRequest, Outcome, Segment

Respond = Callable[[GenerationRequest], Outcome | CertaError]
"""A call's outcome, or the error it fails with (thrown into the strategy as `CallFailed` where it is awaited)."""


def outcome(text: str, finish: FinishReason = FinishReason.LENGTH, tokens: int | None = None) -> Outcome:
    return Outcome(Segment(text), len(text.split()) if tokens is None else tokens, finish)


@dataclass
class Harness:
    """Answers every Start with `respond(request)`; Cancel returns `cancelled_tokens` tokens of partial output, and a
    failed call `failed_tokens`."""

    respond: Respond
    cancelled_tokens: int = 0
    failed_tokens: int = 0
    pool: Callable[[AskPool], int] | None = None  # answers AskPool (the samples granted)
    asked: list[AskPool] = field(default_factory=list)
    started: list[GenerationRequest] = field(default_factory=list)
    cancelled: list[GenerationRequest] = field(default_factory=list)
    emitted: list[Any] = field(default_factory=list)
    log: list[str] = field(default_factory=list)

    def run(self, strategy: Generator[Command, Any, Any]) -> Any:
        outcomes: dict[Handle, Outcome | CertaError] = {}
        requests: dict[Handle, GenerationRequest] = {}
        reply: Any = None
        failure: CallFailed | None = None
        while True:
            try:
                command = strategy.send(reply) if failure is None else strategy.throw(failure)
            except StopIteration as done:
                return done.value
            failure = None
            if isinstance(command, Start):
                handle = Handle(len(self.started))
                self.started.append(command.request)
                requests[handle] = command.request
                outcomes[handle] = self.respond(command.request)
                self.log.append(f"start {command.request.purpose}")
                reply = handle
            elif isinstance(command, Wait):
                self.log.append(f"wait {requests[command.handle].purpose}")
                reply = outcomes.pop(command.handle)
                if isinstance(reply, CertaError):
                    failure = self._failure(command.handle, reply)
            elif isinstance(command, WaitAny):
                handle = next(h for h in command.handles if h in outcomes)
                result = outcomes.pop(handle)
                if isinstance(result, CertaError):
                    failure = self._failure(handle, result)
                reply = (handle, result)
            elif isinstance(command, Cancel):
                self.cancelled.append(requests[command.handle])
                self.log.append(f"cancel {requests[command.handle].purpose}")
                outcomes.pop(command.handle)
                reply = Outcome(Segment(""), self.cancelled_tokens, FinishReason.CANCELLED)
            elif isinstance(command, AskPool):
                if self.pool is None:
                    raise AssertionError(f"unexpected command {command!r}")
                self.asked.append(command)
                reply = self.pool(command)
            elif isinstance(command, Emit):
                self.emitted.append(command.event)
                reply = None
            else:
                raise AssertionError(f"unexpected command {command!r}")

    def _failure(self, handle: Handle, error: CertaError) -> CallFailed:
        self.log.append(f"failed {handle.id}")
        return CallFailed(handle, Outcome(Segment(""), self.failed_tokens, FinishReason.ERROR), error)
