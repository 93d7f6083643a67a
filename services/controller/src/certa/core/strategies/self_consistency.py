"""Self-consistency in waves, with a stop rule and optional refinement (ALGORITHMS.md sections 3 and 4).

Samples are drawn in waves of `wave_size` paths run side by side; after each wave the stop rule looks at every
answer so far (a detection point), and the query stops when it fires or when `max_samples` are drawn. The answer
is the majority over all samples (ties to the earliest), or the answer the rule settled on (ESC).

With a refinement plan, the first wave is independent samples and every later sample is a refinement: its prompt
shows k samples of earlier waves as previous attempts (see `refinement`). Samples of one wave never see each other,
so a wave's calls stay independent and batch on the backend.

In a budget pool (`pooled`), each wave is first asked of the pool (`AskPool`, the first one mandatory): while
several requests of the pool wait, the pool gives the next wave to the most uncertain. A wave the pool does not
grant ends the query with what it has, stop reason `budget`.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import replace
from typing import Any

from certa.core.commands import AskPool, Command
from certa.core.stop_rules import StopDecision, StopRule
from certa.core.strategies.compose import run_concurrently
from certa.core.strategies.refinement import RefinementPlan
from certa.core.strategies.samples import PathFactory, sample_sampling, vote
from certa.core.tally import AnswerTally
from certa.core.types import PathResult, PromptPiece, Round, SamplingParams, StopReason, StrategyResult


def self_consistency(
    prompt: tuple[PromptPiece, ...],
    path: PathFactory,
    sampling: SamplingParams,
    *,
    stop_rule: StopRule,
    wave_size: int,
    max_samples: int,
    refinement: RefinementPlan | None = None,
    pooled: bool = False,
) -> Generator[Command, Any, StrategyResult]:
    """Draw waves until the stop rule fires or `max_samples` are drawn; sample i is seeded with seed + i."""
    samples: list[PathResult] = []
    tally = AnswerTally()
    rounds: list[Round] = []
    decision = StopDecision(False, "no sample drawn", 0.0)
    while len(samples) < max_samples and not decision.stop:
        numbers = range(len(samples), min(len(samples) + wave_size, max_samples))
        if pooled:
            ask = AskPool(len(numbers), len(samples), 1.0 - tally.certaindex, mandatory=not samples)
            if not (yield ask):
                reason = f"the budget pool granted no further wave ({len(samples)} samples drawn)"
                return vote(samples, tally, rounds, replace(decision, reason=reason), StopReason.BUDGET)
        prompts: list[tuple[PromptPiece, ...]] = []
        refined_from: list[tuple[int, ...]] = []
        for number in numbers:
            attempts = refinement.choose(samples, str(number)) if refinement is not None and samples else ()
            prompts.append(refinement.prompt(attempts) if refinement is not None and attempts else prompt)
            refined_from.append(tuple(sample.sample_index for sample in attempts))
        paths = [path(prompts[i], sample_sampling(sampling, n), n) for i, n in enumerate(numbers)]
        wave: list[PathResult] = yield from run_concurrently(paths)
        for result in wave:
            samples.append(result)
            tally = tally.add(result.answer)
        decision = stop_rule.decide(tally)
        rounds.append(
            Round(
                samples=tuple(numbers),
                drawn=len(samples),
                certaindex=tally.certaindex,
                statistic=decision.statistic,
                stop=decision.stop,
                reason=decision.reason,
                refined_from=tuple(refined_from),
            )
        )
    if not decision.stop:
        decision = replace(decision, reason=f"{len(samples)} samples drawn (the maximum); {decision.reason}")
    return vote(samples, tally, rounds, decision, StopReason.CERTAIN if decision.stop else StopReason.VOTED)
