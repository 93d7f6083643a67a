"""DynScaling over a batch: the bandit allocator drives integrated sampling for many questions at once.

Up to `max_in_flight` samples run side by side. Whenever one finishes, its answer goes to the allocator, which
may retire its question (stop rule, cap, budget); the samples of a retired question still running are cancelled
(their tokens still count), the question's result is emitted at once as a `QuestionFinished` event, and the freed
slots go to the questions the allocator picks next. A question's first `warmup` samples are independent; later
ones are refinements of its earlier samples when a refinement is configured (see `refinement`).

A sample whose backend call fails fails its question only: the question is retired with reason `error`, its other
samples are cancelled, and its result carries the error and the samples it had, with no answer. The batch goes on;
it fails (with that error) only when every question failed.

Sample indices are unique across the batch (the allocator's grant id), so per-sample events and the runtime's
per-sample token accounting never mix two questions; a question's sample number (0, 1, …) picks its seed.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, cast

from certa.core.allocator import Allocator, AllocatorConfig, Grant, Retirement
from certa.core.commands import Command, Emit, Handle, QuestionFinished
from certa.core.errors import CertaError, InvalidArgument
from certa.core.stop_rules import StopDecision
from certa.core.strategies.meter import TokenMeter
from certa.core.strategies.pool import TaskFailure, TaskPool
from certa.core.strategies.refinement import Refinement, RefinementPlan, Render, as_prompt, validate_refinement
from certa.core.strategies.samples import PathFactory, sample_sampling, vote
from certa.core.types import Outcome, PathResult, PromptPiece, RetireReason, Round, SamplingParams, StopReason

_STOP_REASONS = {
    RetireReason.CERTAIN: StopReason.CERTAIN,
    RetireReason.CAP: StopReason.VOTED,
    RetireReason.BUDGET: StopReason.BUDGET,
    RetireReason.ERROR: StopReason.ERROR,
}


@dataclass(frozen=True)
class BatchQuestion:
    """One question of a batch: its id, its prompt, and its text (what a refinement prompt quotes)."""

    id: str
    prompt: tuple[PromptPiece, ...]
    question: str = ""


@dataclass(frozen=True)
class BatchResult:
    """Every question's final result, in batch order, and what the batch spent."""

    questions: tuple[QuestionFinished, ...]
    samples: int
    generated_tokens: int


@dataclass
class _Question:
    spec: BatchQuestion
    plan: RefinementPlan | None
    samples: list[PathResult] = field(default_factory=list)
    rounds: list[Round] = field(default_factory=list)
    prompt_tokens: int = 0
    error: CertaError | None = None


@dataclass(frozen=True)
class _Running:
    grant: Grant
    meter: TokenMeter
    refined_from: tuple[int, ...]


def batch_strategy(
    questions: Sequence[BatchQuestion],
    path: PathFactory,
    sampling: SamplingParams,
    config: AllocatorConfig,
    *,
    max_in_flight: int,
    refinement: Refinement | None = None,
    render: Render = as_prompt,
    max_questions: int | None = None,
    field_prefix: str = "batch",
) -> Generator[Command, Any, BatchResult]:
    """The batch as a strategy. Validates now (`InvalidArgument` naming the field), runs when driven.

    `config.sample_max_tokens` must cover everything one sample of `path` may generate (path and probes); each
    sample is metered to it. `render` turns a refinement message into a prompt (the server's chat template).
    """
    allocator = Allocator([q.id for q in questions], config, max_questions=max_questions, field=field_prefix)
    if max_in_flight < 1:
        raise InvalidArgument(f"{field_prefix}.max_in_flight", f"must be >= 1, got {max_in_flight}")
    if refinement is not None:
        validate_refinement(refinement, f"{field_prefix}.refinement")
        unquotable = [q.id for q in questions if not q.question.strip()]
        if unquotable:
            raise InvalidArgument(
                f"{field_prefix}.questions",
                f"refinement quotes the question text; none for {', '.join(unquotable[:5])}",
            )
    seed = sampling.seed or 0
    states = {
        q.id: _Question(q, None if refinement is None else RefinementPlan(refinement, q.question, seed, render))
        for q in questions
    }
    return _run(allocator, states, path, sampling, max_in_flight)


def _run(
    allocator: Allocator,
    states: dict[str, _Question],
    path: PathFactory,
    sampling: SamplingParams,
    max_in_flight: int,
) -> Generator[Command, Any, BatchResult]:
    pool = TaskPool()
    running: dict[int, _Running] = {}
    finished: dict[str, QuestionFinished] = {}

    def launch() -> None:
        while allocator.in_flight < max_in_flight and (grant := allocator.grant()) is not None:
            state = states[grant.question]
            attempts: tuple[PathResult, ...] = ()
            if state.plan is not None and grant.number >= allocator.config.warmup:
                attempts = state.plan.choose(state.samples, f"{grant.question}:{grant.number}")
            prompt = state.plan.prompt(attempts) if state.plan is not None and attempts else state.spec.prompt
            meter = TokenMeter(grant.tokens)
            pool.add(grant.id, meter.run(path(prompt, sample_sampling(sampling, grant.number), grant.id)))
            running[grant.id] = _Running(grant, meter, tuple(sample.sample_index for sample in attempts))

    launch()
    while running:
        grant_id, result = yield from pool.next_finished()
        sample = running.pop(cast(int, grant_id))
        state = states[sample.grant.question]
        if isinstance(result, TaskFailure):
            retirements = _fail(state, sample, result, allocator)
        else:
            state.prompt_tokens += sample.meter.prompt_tokens
            retirements = allocator.settle(sample.grant, result.answer, sample.meter.generated)
            _record(state, allocator, result, sample.refined_from)
        while retirements:
            retirement = retirements.pop(0)
            for grant in allocator.in_flight_grants(retirement.question):
                retirements += yield from _cancel(pool, running.pop(grant.id), allocator, states)
            question_finished = _finish(states[retirement.question], allocator, retirement)
            finished[retirement.question] = question_finished
            yield Emit(question_finished)
        launch()
        if not running and not allocator.done:
            for retirement in allocator.close():
                finished[retirement.question] = _finish(states[retirement.question], allocator, retirement)
                yield Emit(finished[retirement.question])
    errors = [state.error for state in states.values()]
    if errors[0] is not None and all(errors):
        raise errors[0]  # nothing was answered: the batch fails, each question's error already reported
    return BatchResult(
        questions=tuple(finished[question] for question in states),
        samples=allocator.samples_started,
        generated_tokens=allocator.tokens_spent,
    )


def _cancel(
    pool: TaskPool, sample: _Running, allocator: Allocator, states: dict[str, _Question]
) -> Generator[Command, Any, list[Retirement]]:
    """Stop a sample of a retired question; its tokens count toward the question and the budget."""
    cancelled = yield from pool.cancel(sample.grant.id)
    return _abandon(states[sample.grant.question], sample, cancelled, allocator)


def _fail(state: _Question, sample: _Running, failure: TaskFailure, allocator: Allocator) -> list[Retirement]:
    """A sample failed: its tokens count, and its question gets no more samples."""
    state.error = failure.error
    detail = f"sample {sample.grant.number} failed: {failure.error}"
    retired = allocator.retire(state.spec.id, RetireReason.ERROR, detail)
    return [retired, *_abandon(state, sample, failure.outcomes, allocator)]


def _abandon(
    state: _Question, sample: _Running, outcomes: Sequence[tuple[Handle, Outcome]], allocator: Allocator
) -> list[Retirement]:
    """Book a sample that ended without an answer (cancelled or failed): its calls' tokens count toward the
    question and the budget."""
    for handle, outcome in outcomes:
        sample.meter.book(handle, outcome)
    state.prompt_tokens += sample.meter.prompt_tokens
    return allocator.abandon(sample.grant, sample.meter.generated)


def _record(state: _Question, allocator: Allocator, result: PathResult, refined_from: tuple[int, ...]) -> None:
    stats = allocator.stats(state.spec.id)
    decision = stats.decision or StopDecision(False, "warm-up", stats.tally.certaindex)
    state.samples.append(result)
    state.rounds.append(
        Round(
            samples=(result.sample_index,),
            drawn=stats.tally.samples,
            certaindex=stats.tally.certaindex,
            statistic=decision.statistic,
            stop=decision.stop,
            reason=decision.reason,
            refined_from=(refined_from,),
        )
    )


def _finish(state: _Question, allocator: Allocator, retirement: Retirement) -> QuestionFinished:
    stats = allocator.stats(state.spec.id)
    decision = stats.decision if retirement.reason is RetireReason.CERTAIN and stats.decision else None
    if decision is None:
        decision = StopDecision(False, retirement.detail, stats.tally.certaindex)
    result = vote(state.samples, stats.tally, state.rounds, decision, _STOP_REASONS[retirement.reason])
    if retirement.reason is RetireReason.ERROR:
        result = replace(result, answer="", text="")  # what it had, but no answer: its vote was cut short
    return QuestionFinished(
        question_id=state.spec.id,
        result=result,
        reason=retirement.reason,
        generated_tokens=stats.tokens,
        prompt_tokens=state.prompt_tokens,
        error=state.error if retirement.reason is RetireReason.ERROR else None,
    )
