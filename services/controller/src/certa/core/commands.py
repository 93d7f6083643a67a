"""What a strategy can yield to the runtime, and the progress events it reports.

A strategy is a generator. It yields a command and receives the command's result:

    handle = yield Start(request)          # a Handle; the call runs in the background
    outcome = yield Wait(handle)           # the call's Outcome
    handle, outcome = yield WaitAny(hs)    # the first of several calls to finish
    partial = yield Cancel(handle)         # stops the call; its Outcome so far (tokens spent are kept)
    yield Emit(event)                      # reports progress (probes, decisions, a batch's finished questions)

Its `return` value is the result. `generate` is sugar for Start followed by Wait.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

from certa.core.types import GenerationRequest, Outcome, ProbeRecord, RetireReason, StopReason, StrategyResult


@dataclass(frozen=True)
class Handle:
    """An in-flight backend call, named by the runtime."""

    id: int


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
class Decision:
    """A path (or the whole request) stopped, and why."""

    sample_index: int
    stop_reason: StopReason
    answer: str
    detail: str = ""


@dataclass(frozen=True)
class QuestionFinished:
    """One question of a batch is final: its result, why it got no more samples, and the tokens it cost.

    `generated_tokens` counts paths and probes of all its samples, cancelled ones included; `prompt_tokens` is what
    the backend reported for their prompts.
    """

    question_id: str
    result: StrategyResult
    reason: RetireReason
    generated_tokens: int
    prompt_tokens: int


Event = ProbeRecord | Decision | QuestionFinished


@dataclass(frozen=True)
class Emit:
    event: Event


Command = Start | Wait | WaitAny | Cancel | Emit

Strategy = Generator[Command, Any, Any]
"""A running strategy: yields commands, receives their results, returns its result."""


def generate(request: GenerationRequest) -> Generator[Command, Any, Outcome]:
    """Start one call and wait for it."""
    handle = yield Start(request)
    outcome: Outcome = yield Wait(handle)
    return outcome
