"""What a strategy can yield to the runtime, and the progress events it reports.

A strategy is a generator. It yields a command and receives the command's result:

    handle = yield Start(request)          # a Handle; the call runs in the background
    outcome = yield Wait(handle)           # the call's Outcome
    handle, outcome = yield WaitAny(hs)    # the first of several calls to finish
    partial = yield Cancel(handle)         # stops the call; its Outcome so far (tokens spent are kept)
    granted = yield AskPool(samples, ...)  # asks the request's budget pool for a wave; the samples granted (or 0)
    yield Emit(event)                      # reports progress (probes, decisions, a batch's finished questions)

Its `return` value is the result. `generate` is sugar for Start followed by Wait.

A call that fails raises `CallFailed` at the `Wait`/`WaitAny` that awaited it. A strategy that does not catch it
fails the request with the call's error; a batch catches it to fail only the question the call belonged to.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

from certa.core.errors import CertaError
from certa.core.types import GenerationRequest, Outcome, ProbeRecord, RetireReason, StopReason, StrategyResult


@dataclass(frozen=True)
class Handle:
    """An in-flight backend call, named by the runtime."""

    id: int


class CallFailed(Exception):
    """The call named by `handle` failed with `error`; `partial` is what it had produced (its tokens count)."""

    def __init__(self, handle: Handle, partial: Outcome, error: CertaError) -> None:
        super().__init__(str(error))
        self.handle = handle
        self.partial = partial
        self.error = error


@dataclass(frozen=True)
class Start:
    request: GenerationRequest


@dataclass(frozen=True)
class Wait:
    handle: Handle


@dataclass(frozen=True)
class WaitAny:
    handles: tuple[Handle, ...]


@dataclass(frozen=True)
class Cancel:
    handle: Handle


@dataclass(frozen=True)
class AskPool:
    """Ask the request's budget pool for a wave of `samples`, having drawn `drawn` with uncertainty 1 − Certaindex.

    The reply is the samples granted: all of them, or 0 when the pool had none for this request within its wait
    (the strategy then stops with what it has). A `mandatory` wave (the first) is always granted.
    """

    samples: int
    drawn: int
    uncertainty: float
    mandatory: bool = False


@dataclass(frozen=True)
class Decision:
    """A path (or the whole request) stopped, and why."""

    sample_index: int
    stop_reason: StopReason
    answer: str
    detail: str = ""


@dataclass(frozen=True)
class QuestionFinished:
    """One question of a batch is final: its result, why it got no more samples, and the tokens it cost.

    `generated_tokens` counts paths and probes of all its samples, cancelled and failed ones included;
    `prompt_tokens` is what the backend reported for their prompts. `error` is set when the question was given up
    because one of its samples failed (reason `error`); its result then has no answer, only the samples it had.
    """

    question_id: str
    result: StrategyResult
    reason: RetireReason
    generated_tokens: int
    prompt_tokens: int
    error: CertaError | None = None


Event = ProbeRecord | Decision | QuestionFinished


@dataclass(frozen=True)
class Emit:
    event: Event


Command = Start | Wait | WaitAny | Cancel | AskPool | Emit

Strategy = Generator[Command, Any, Any]
"""A running strategy: yields commands, receives their results, returns its result."""


def generate(request: GenerationRequest) -> Generator[Command, Any, Outcome]:
    """Start one call and wait for it."""
    handle = yield Start(request)
    outcome: Outcome = yield Wait(handle)
    return outcome
