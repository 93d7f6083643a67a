"""Plain chain of thought: one path generated to the end or to the budget. The baseline for Dynasor-CoT."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from certa.core.answers import extract_boxed
from certa.core.commands import Command, Decision, Emit, generate
from certa.core.types import (
    FinishReason,
    GenerationRequest,
    PathResult,
    PromptPiece,
    Purpose,
    SamplingParams,
    StopReason,
)


def plain_cot(
    prompt: tuple[PromptPiece, ...], token_budget: int, sampling: SamplingParams, sample_index: int = 0
) -> Generator[Command, Any, PathResult]:
    outcome = yield from generate(
        GenerationRequest(prompt, token_budget, sampling, Purpose.PATH, sample_index)
    )
    answer = extract_boxed(outcome.text)
    stop = StopReason.MODEL_FINISHED if outcome.finish is FinishReason.STOP else StopReason.BUDGET
    yield Emit(Decision(sample_index, stop, answer))
    return PathResult(
        answer=answer,
        stop_reason=stop,
        text=outcome.text,
        path_tokens=outcome.tokens,
        probe_tokens=0,
        sample_index=sample_index,
        detail=_fitted(outcome.fitted_max_tokens, token_budget),
    )


def _fitted(fitted_max_tokens: int | None, token_budget: int) -> str:
    if fitted_max_tokens is None:
        return ""
    return (f"token budget {token_budget} fitted to the model's context: max_tokens {fitted_max_tokens} "
            "(prompt + max_tokens <= context)")
