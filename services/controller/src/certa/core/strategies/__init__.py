"""Strategies, and how a request's strategy specification becomes a running strategy."""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from certa.core.commands import Command
from certa.core.strategies.compose import majority_vote, single_path
from certa.core.strategies.dynasor import DynasorConfig, dynasor_cot
from certa.core.strategies.plain import plain_cot
from certa.core.types import PathResult, PromptPiece, SamplingParams, StrategyResult


class StrategyName(StrEnum):
    """Strategy names shared by the API, the CLI and the chart."""

    PLAIN = "plain"
    DYNASOR_COT = "dynasor-cot"
    MAJORITY_VOTE = "majority-vote"


@dataclass(frozen=True)
class PlainSpec:
    pass


@dataclass(frozen=True)
class MajorityVoteSpec:
    n: int
    inner: PlainSpec | DynasorConfig


StrategySpec = PlainSpec | DynasorConfig | MajorityVoteSpec


def strategy_name(spec: StrategySpec) -> StrategyName:
    if isinstance(spec, PlainSpec):
        return StrategyName.PLAIN
    if isinstance(spec, DynasorConfig):
        return StrategyName.DYNASOR_COT
    return StrategyName.MAJORITY_VOTE


def _path(
    spec: PlainSpec | DynasorConfig,
    prompt: tuple[PromptPiece, ...],
    token_budget: int,
    sampling: SamplingParams,
    sample_index: int,
) -> Generator[Command, Any, PathResult]:
    if isinstance(spec, PlainSpec):
        return plain_cot(prompt, token_budget, sampling, sample_index)
    return dynasor_cot(prompt, token_budget, sampling, spec, sample_index)


def build_strategy(
    spec: StrategySpec, prompt: tuple[PromptPiece, ...], token_budget: int, sampling: SamplingParams
) -> Generator[Command, Any, StrategyResult]:
    """The running strategy for a validated specification.

    Majority-vote samples get distinct seeds (seed + index) when the request fixes a seed, so they differ.
    """
    if isinstance(spec, MajorityVoteSpec):
        paths = [
            _path(
                spec.inner,
                prompt,
                token_budget,
                sampling if sampling.seed is None else replace(sampling, seed=(sampling.seed + index) % 2**64),
                index,
            )
            for index in range(spec.n)
        ]
        return majority_vote(paths)
    return single_path(_path(spec, prompt, token_budget, sampling, 0))


__all__ = [
    "DynasorConfig",
    "MajorityVoteSpec",
    "PlainSpec",
    "StrategyName",
    "StrategySpec",
    "build_strategy",
    "strategy_name",
]
