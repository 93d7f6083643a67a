"""Strategies, and how a request's strategy specification becomes a running strategy."""

from __future__ import annotations

import math
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from certa.core.allocator import AllocatorConfig, BatchBudget
from certa.core.budget_pool import validate_pool_name
from certa.core.commands import Command
from certa.core.errors import InvalidArgument
from certa.core.stop_rules import DEFAULT_STOP_RULE, StopRule, validate_stop_rule
from certa.core.strategies.batch import BatchQuestion, BatchResult, batch_strategy
from certa.core.strategies.compose import majority_vote, single_path
from certa.core.strategies.dynasor import DynasorConfig, dynasor_cot
from certa.core.strategies.plain import plain_cot
from certa.core.strategies.refinement import Refinement, RefinementPlan, Render, as_prompt, validate_refinement
from certa.core.strategies.samples import PathFactory, sample_sampling
from certa.core.strategies.self_consistency import self_consistency
from certa.core.types import BatchTotals, PathResult, PromptPiece, SamplingParams, StopReason, StrategyResult


class StrategyName(StrEnum):
    """Strategy names shared by the API, the CLI and the chart."""

    PLAIN = "plain"
    DYNASOR_COT = "dynasor-cot"
    MAJORITY_VOTE = "majority-vote"
    SELF_CONSISTENCY = "self-consistency"
    BATCH = "batch"


@dataclass(frozen=True)
class PlainSpec:
    pass


@dataclass(frozen=True)
class MajorityVoteSpec:
    n: int
    inner: PlainSpec | DynasorConfig


PathSpec = PlainSpec | DynasorConfig


@dataclass(frozen=True)
class SelfConsistencySpec:
    """Self-consistency in waves with a stop rule; `refinement` turns on integrated parallel–sequential sampling.

    Defaults are the reference values: Certaindex τ = 0.7 checked from 5 samples, at most 40 samples.
    """

    inner: PathSpec
    stop_rule: StopRule = DEFAULT_STOP_RULE
    wave_size: int = 5
    max_samples: int = 40
    refinement: Refinement | None = None
    pool: str = ""  # the tenant's budget pool its waves come from; empty: none


StrategySpec = PlainSpec | DynasorConfig | MajorityVoteSpec | SelfConsistencySpec


def strategy_name(spec: StrategySpec | BatchSpec) -> StrategyName:
    if isinstance(spec, BatchSpec):
        return StrategyName.BATCH
    if isinstance(spec, PlainSpec):
        return StrategyName.PLAIN
    if isinstance(spec, DynasorConfig):
        return StrategyName.DYNASOR_COT
    if isinstance(spec, SelfConsistencySpec):
        return StrategyName.SELF_CONSISTENCY
    return StrategyName.MAJORITY_VOTE


def validate_self_consistency(
    spec: SelfConsistencySpec, field: str = "self_consistency", max_samples: int | None = None
) -> SelfConsistencySpec:
    """`spec` when its parameters are in range (`max_samples`: the server's cap); `InvalidArgument` otherwise."""
    cap = spec.max_samples if max_samples is None else max_samples
    if not 1 <= spec.max_samples <= cap:
        raise InvalidArgument(f"{field}.max_samples", f"must be in [1, {cap}], got {spec.max_samples}")
    if not 1 <= spec.wave_size <= spec.max_samples:
        raise InvalidArgument(
            f"{field}.wave_size", f"must be in [1, max_samples = {spec.max_samples}], got {spec.wave_size}"
        )
    validate_stop_rule(spec.stop_rule, f"{field}.stop_rule")
    if spec.refinement is not None:
        validate_refinement(spec.refinement, f"{field}.refinement")
    if spec.pool:
        validate_pool_name(spec.pool, f"{field}.pool")
    return spec


def sample_max_tokens(spec: PathSpec, token_budget: int) -> int:
    """The most one sample can generate: its path budget plus, for Dynasor-CoT, a probe after every chunk."""
    if isinstance(spec, PlainSpec):
        return token_budget
    return token_budget + math.ceil(token_budget / spec.chunk_tokens) * spec.probe_tokens


def path_factory(spec: PathSpec, token_budget: int) -> PathFactory:
    """Samples of `spec`, each with `token_budget` path tokens."""

    def make(
        prompt: tuple[PromptPiece, ...], sampling: SamplingParams, sample_index: int
    ) -> Generator[Command, Any, PathResult]:
        return _path(spec, prompt, token_budget, sampling, sample_index)

    return make


def _path(
    spec: PathSpec,
    prompt: tuple[PromptPiece, ...],
    token_budget: int,
    sampling: SamplingParams,
    sample_index: int,
) -> Generator[Command, Any, PathResult]:
    if isinstance(spec, PlainSpec):
        return plain_cot(prompt, token_budget, sampling, sample_index)
    return dynasor_cot(prompt, token_budget, sampling, spec, sample_index)


def build_strategy(
    spec: StrategySpec,
    prompt: tuple[PromptPiece, ...],
    token_budget: int,
    sampling: SamplingParams,
    *,
    question: str | None = None,
    render: Render = as_prompt,
) -> Generator[Command, Any, StrategyResult]:
    """The running strategy for a validated specification.

    Samples of multi-sample strategies get distinct seeds (seed + index) when the request fixes a seed, so they
    differ. Refinement prompts quote `question` (the request's question text) and become prompts through `render`;
    a self-consistency spec with a refinement needs the question.
    """
    if isinstance(spec, MajorityVoteSpec):
        paths = [
            _path(spec.inner, prompt, token_budget, sample_sampling(sampling, index), index) for index in range(spec.n)
        ]
        return majority_vote(paths)
    if isinstance(spec, SelfConsistencySpec):
        return self_consistency(
            prompt,
            path_factory(spec.inner, token_budget),
            sampling,
            stop_rule=spec.stop_rule,
            wave_size=spec.wave_size,
            max_samples=spec.max_samples,
            refinement=_refinement_plan(spec.refinement, question, sampling, render),
            pooled=bool(spec.pool),
        )
    return single_path(_path(spec, prompt, token_budget, sampling, 0))


@dataclass(frozen=True)
class BatchSpec:
    """A validated batch: its questions (id, text), how each sample runs, and how the budget is spread."""

    questions: tuple[tuple[str, str], ...]
    inner: PathSpec
    allocator: AllocatorConfig
    max_in_flight: int = 16
    refinement: Refinement | None = None


def build_batch(
    spec: BatchSpec,
    prompts: Sequence[tuple[PromptPiece, ...]],
    token_budget: int,
    sampling: SamplingParams,
    render: Render = as_prompt,
) -> Generator[Command, Any, StrategyResult]:
    """The batch as a request-level strategy: each question's result is emitted as it becomes final
    (`QuestionFinished`); the return value carries what the batch spent."""
    questions = [
        BatchQuestion(question_id, prompt, text)
        for (question_id, text), prompt in zip(spec.questions, prompts, strict=True)
    ]
    batch = batch_strategy(
        questions,
        path_factory(spec.inner, token_budget),
        sampling,
        spec.allocator,
        max_in_flight=spec.max_in_flight,
        refinement=spec.refinement,
        render=render,
    )
    return _batch_totals(batch, spec.allocator.budget)


def _batch_totals(
    batch: Generator[Command, Any, BatchResult], budget: BatchBudget
) -> Generator[Command, Any, StrategyResult]:
    result = yield from batch
    failed = sum(1 for question in result.questions if question.error is not None)
    totals = BatchTotals(
        len(result.questions),
        result.samples,
        result.generated_tokens,
        failed,
        budget_samples=budget.samples or 0,
        budget_tokens=budget.tokens or 0,
    )
    return StrategyResult(
        answer="",
        stop_reason=StopReason.VOTED,
        text="",
        samples=(),
        stop_detail=f"{totals.questions} questions ({failed} failed): {totals.samples} samples, "
        f"{totals.generated_tokens} tokens",
        batch=totals,
    )


def _refinement_plan(
    refinement: Refinement | None, question: str | None, sampling: SamplingParams, render: Render
) -> RefinementPlan | None:
    if refinement is None:
        return None
    if question is None:
        raise InvalidArgument("question", "refinement quotes the question: send a question, not a raw prompt")
    return RefinementPlan(refinement, question, sampling.seed or 0, render)


__all__ = [
    "BatchSpec",
    "DynasorConfig",
    "MajorityVoteSpec",
    "PathSpec",
    "PlainSpec",
    "Refinement",
    "SelfConsistencySpec",
    "StrategyName",
    "StrategySpec",
    "build_batch",
    "build_strategy",
    "path_factory",
    "sample_max_tokens",
    "strategy_name",
    "validate_self_consistency",
]
