"""What the multi-sample strategies share: how one sample is made, and how a query's samples become its result."""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import replace
from typing import Any, Protocol

from certa.core.commands import Command
from certa.core.stop_rules import StopDecision
from certa.core.tally import AnswerTally
from certa.core.types import PathResult, PromptPiece, Round, SamplingParams, StopReason, StrategyResult


class PathFactory(Protocol):
    """Makes one sample: a plain or a Dynasor-CoT path for `prompt`, so the strategies stay generic."""

    def __call__(
        self, prompt: tuple[PromptPiece, ...], sampling: SamplingParams, sample_index: int
    ) -> Generator[Command, Any, PathResult]: ...


def sample_sampling(sampling: SamplingParams, number: int) -> SamplingParams:
    """Sample `number` of a query uses seed + number when the request fixes a seed, so the samples differ."""
    return sampling if sampling.seed is None else replace(sampling, seed=(sampling.seed + number) % 2**64)


def voted_answer(tally: AnswerTally, decision: StopDecision) -> str:
    """The largest answer class's (ties to the earliest sample), unless the stop rule settled on one (ESC)."""
    if decision.answer is not None:
        return decision.answer
    classes = tally.classes
    return classes[0].answer if classes else ""


def vote(
    samples: Sequence[PathResult],
    tally: AnswerTally,
    rounds: Sequence[Round],
    decision: StopDecision,
    stop_reason: StopReason,
) -> StrategyResult:
    """The query's result: its `voted_answer`, with the text of the earliest sample giving it. `samples` are in the
    order `tally` counted them."""
    answer = voted_answer(tally, decision)
    text = samples[tally.first_samples[tally.representatives.index(answer)]].text if answer else ""
    return StrategyResult(
        answer=answer,
        stop_reason=stop_reason,
        text=text,
        samples=tuple(samples),
        answer_classes=tally.classes,
        rounds=tuple(rounds),
        stop_detail=decision.reason,
    )
