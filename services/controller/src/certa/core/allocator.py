"""DynScaling's bandit allocation of a sample budget across a batch of queries (ALGORITHMS.md section 4).

The arms are the queries. Every query first gets `warmup` samples (n0). Then each free slot goes to the query with
the highest score s_i = u_i + β·sqrt(2 ln t / n_i), where u_i = 1 − certaindex_i is its answer uncertainty,
n_i its samples (drawn or in flight) and t the batch's. A query retires when its stop rule fires (consulted once
its warm-up has come back), when it reaches its cap, or when the budget is spent; what it did not use stays in the
pool for the others. `Policy.UNIFORM` is the baseline: each slot to the query with the fewest samples.

**The budget is never exceeded, samples or tokens, however many samples are in flight.** A grant reserves one
sample and `sample_max_tokens` tokens before the sample starts; `settle` books the tokens it really generated
(paths and probes; prompts are not counted) and releases the rest of its reservation; `abandon` does the same for a
sample cancelled before it finished. A sample slot is never given back: the samples budget counts samples started.
Warm-ups are granted before anything else, and validation demands a budget that covers them, so every query gets
its warm-up (unless the runtime retires it on an error).

The allocator is plain state driven by the caller (grant, settle, abandon, retire): no clock, no randomness, so
the same replies give the same grants.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from certa.core.answers import equivalent
from certa.core.arm_index import ArmIndex
from certa.core.errors import InvalidArgument
from certa.core.stop_rules import DEFAULT_STOP_RULE, StopDecision, StopRule, validate_stop_rule
from certa.core.tally import AnswerTally, Equivalence
from certa.core.types import RetireReason


class Policy(StrEnum):
    BANDIT = "bandit"
    UNIFORM = "uniform"


@dataclass(frozen=True)
class BatchBudget:
    """What the whole batch may spend: samples started and/or generated tokens. None: no limit of that kind."""

    samples: int | None = None
    tokens: int | None = None


@dataclass(frozen=True)
class AllocatorConfig:
    """Allocation parameters; all of them are our choices (the paper gives none), so all are configurable."""

    budget: BatchBudget
    sample_max_tokens: int
    per_question_cap: int = 40
    warmup: int = 3
    exploration: float = 0.1
    stop_rule: StopRule = DEFAULT_STOP_RULE
    policy: Policy = Policy.BANDIT


@dataclass(frozen=True)
class Grant:
    """One sample granted to `question`: its number within the query and the tokens reserved for it."""

    id: int
    question: str
    number: int
    tokens: int


@dataclass(frozen=True)
class Retirement:
    question: str
    reason: RetireReason
    detail: str


@dataclass(frozen=True)
class ArmStats:
    """A query's allocation so far."""

    question: str
    started: int
    settled: int
    in_flight: int
    tokens: int
    tally: AnswerTally
    decision: StopDecision | None
    retired: Retirement | None


@dataclass
class _Arm:
    question: str
    order: int
    tally: AnswerTally
    started: int = 0
    in_flight: int = 0
    tokens: int = 0
    decision: StopDecision | None = None
    retired: Retirement | None = None

    @property
    def returned(self) -> int:
        """Samples back from the backend (settled or abandoned)."""
        return self.started - self.in_flight

    def stats(self) -> ArmStats:
        return ArmStats(
            self.question,
            self.started,
            self.tally.samples,
            self.in_flight,
            self.tokens,
            self.tally,
            self.decision,
            self.retired,
        )


def validate_batch(
    questions: Sequence[str], config: AllocatorConfig, max_questions: int | None = None, field: str = "batch"
) -> None:
    """`InvalidArgument` naming the field when the batch or its allocation parameters are out of range."""
    if not questions:
        raise InvalidArgument(f"{field}.questions", "must not be empty")
    if max_questions is not None and len(questions) > max_questions:
        raise InvalidArgument(f"{field}.questions", f"at most {max_questions} per batch, got {len(questions)}")
    duplicates = sorted(question for question, count in Counter(questions).items() if count > 1)
    if duplicates:
        raise InvalidArgument(f"{field}.questions", f"ids must be unique; repeated: {', '.join(duplicates[:5])}")
    if config.per_question_cap < 1:
        raise InvalidArgument(f"{field}.per_question_cap", f"must be >= 1, got {config.per_question_cap}")
    if not 1 <= config.warmup <= config.per_question_cap:
        raise InvalidArgument(
            f"{field}.warmup", f"must be in [1, per_question_cap = {config.per_question_cap}], got {config.warmup}"
        )
    if not config.exploration >= 0.0:
        raise InvalidArgument(f"{field}.exploration", f"must be >= 0, got {config.exploration:g}")
    if config.sample_max_tokens < 1:
        raise InvalidArgument(f"{field}.sample_max_tokens", f"must be >= 1, got {config.sample_max_tokens}")
    validate_stop_rule(config.stop_rule, f"{field}.stop_rule")
    budget = config.budget
    if budget.samples is None and budget.tokens is None:
        raise InvalidArgument(f"{field}.budget", "set a number of samples, of tokens, or both")
    warmups = config.warmup * len(questions)
    if budget.samples is not None and budget.samples < warmups:
        raise InvalidArgument(
            f"{field}.budget.samples",
            f"must cover the warm-up ({config.warmup} x {len(questions)} questions = {warmups}), got {budget.samples}",
        )
    warmup_tokens = warmups * config.sample_max_tokens
    if budget.tokens is not None and budget.tokens < warmup_tokens:
        raise InvalidArgument(
            f"{field}.budget.tokens",
            f"must cover the warm-up ({warmups} samples x {config.sample_max_tokens} tokens = {warmup_tokens}), "
            f"got {budget.tokens}",
        )


class Allocator:
    """Grants samples to the queries of one batch within its budget. See the module docstring."""

    def __init__(
        self,
        questions: Sequence[str],
        config: AllocatorConfig,
        *,
        max_questions: int | None = None,
        same: Equivalence = equivalent,
        field: str = "batch",
    ) -> None:
        validate_batch(questions, config, max_questions, field)
        self.config = config
        self._same = same
        self._arms = {question: _Arm(question, order, AnswerTally()) for order, question in enumerate(questions)}
        self._by_order = list(self._arms.values())
        self._index = ArmIndex(len(questions))
        self._active_arms = len(questions)
        self._grants: dict[int, Grant] = {}
        self._next_grant = 0
        self.samples_started = 0
        self.tokens_spent = 0
        self.tokens_reserved = 0
        for arm in self._by_order:
            self._reindex(arm)

    # -- what the caller asks ------------------------------------------------------------------------------------

    def grant(self) -> Grant | None:
        """Reserve the next sample for the query that deserves it, or None when nothing can be granted now."""
        if not self._affordable():
            return None
        arm = self._choose()
        if arm is None:
            return None
        grant = Grant(self._next_grant, arm.question, arm.started, self.config.sample_max_tokens)
        self._next_grant += 1
        self._grants[grant.id] = grant
        arm.started += 1
        arm.in_flight += 1
        self.samples_started += 1
        self.tokens_reserved += grant.tokens
        self._reindex(arm)
        return grant

    def settle(self, grant: Grant, answer: str, tokens: int) -> list[Retirement]:
        """Book a finished sample. Returns the queries this retires (its own, and any starved by the budget)."""
        arm = self._release(grant, tokens)
        if arm.retired is not None:
            return []  # retired while this sample ran (an error): its tokens count, its answer no longer does
        arm.tally = arm.tally.add(answer, self._same)
        retired = []
        if arm.returned >= self.config.warmup:
            arm.decision = self.config.stop_rule.decide(arm.tally)
            if arm.decision.stop:
                retired.append(self._retire(arm, RetireReason.CERTAIN, arm.decision.reason))
        if arm.retired is None and arm.started >= self.config.per_question_cap and arm.in_flight == 0:
            retired.append(self._retire(arm, RetireReason.CAP, f"{arm.started} samples (the cap)"))
        self._reindex(arm)
        return retired + self._retire_starved()

    def abandon(self, grant: Grant, tokens: int) -> list[Retirement]:
        """Book a sample that was cancelled: its tokens count, it has no answer."""
        arm = self._release(grant, tokens)
        retired = []
        if arm.retired is None and arm.started >= self.config.per_question_cap and arm.in_flight == 0:
            retired.append(self._retire(arm, RetireReason.CAP, f"{arm.started} samples (the cap)"))
        self._reindex(arm)
        return retired + self._retire_starved()

    def retire(self, question: str, reason: RetireReason, detail: str = "") -> Retirement:
        """Give `question` no more samples (the runtime's way to drop a query, e.g. on an error)."""
        arm = self._arms[question]
        return arm.retired or self._retire(arm, reason, detail)

    def close(self) -> list[Retirement]:
        """Retire every active query for lack of budget. Call it when `grant` returns None and nothing is in
        flight: nothing can change any more."""
        if self.in_flight:
            raise RuntimeError("close() with samples in flight; settle or abandon them first")
        return [self._retire(arm, RetireReason.BUDGET, self._budget_detail()) for arm in self._active()]

    # -- what the caller reads -----------------------------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        return len(self._grants)

    @property
    def done(self) -> bool:
        return self._active_arms == 0

    def stats(self, question: str) -> ArmStats:
        return self._arms[question].stats()

    def in_flight_grants(self, question: str) -> tuple[Grant, ...]:
        return tuple(grant for grant in self._grants.values() if grant.question == question)

    # -- inside --------------------------------------------------------------------------------------------------

    def _active(self) -> list[_Arm]:
        return [arm for arm in self._arms.values() if arm.retired is None]

    def _affordable(self) -> bool:
        budget = self.config.budget
        if budget.samples is not None and self.samples_started >= budget.samples:
            return False
        committed = self.tokens_spent + self.tokens_reserved
        return budget.tokens is None or committed + self.config.sample_max_tokens <= budget.tokens

    def _choose(self) -> _Arm | None:
        """Warm-ups first (fewest samples, then batch order), then the best UCB score among arms whose warm-up is
        back. The UCB's n counts samples in flight, so concurrent slots of one round spread over queries instead of
        piling onto the top one."""
        fewest = self._index.fewest()
        if fewest is None:
            return None
        order, started = fewest
        if started < self.config.warmup or self.config.policy is Policy.UNIFORM:
            return self._by_order[order]
        best = self._index.best(self.config.exploration, max(self.samples_started, 2))
        return None if best is None else self._by_order[best]

    def _reindex(self, arm: _Arm) -> None:
        self._index.update(
            arm.order,
            arm.started,
            1.0 - arm.tally.certaindex,
            open_=arm.retired is None and arm.started < self.config.per_question_cap,
            ready=arm.returned >= self.config.warmup,
        )

    def _release(self, grant: Grant, tokens: int) -> _Arm:
        if self._grants.pop(grant.id, None) is None:
            raise ValueError(f"grant {grant.id} is not in flight")
        if not 0 <= tokens <= grant.tokens:
            raise ValueError(f"grant {grant.id} reserved {grant.tokens} tokens, the sample reports {tokens}")
        arm = self._arms[grant.question]
        arm.in_flight -= 1
        arm.tokens += tokens
        self.tokens_reserved -= grant.tokens
        self.tokens_spent += tokens
        return arm

    def _retire(self, arm: _Arm, reason: RetireReason, detail: str) -> Retirement:
        arm.retired = Retirement(arm.question, reason, detail)
        self._active_arms -= 1
        self._reindex(arm)
        return arm.retired

    def _retire_starved(self) -> list[Retirement]:
        """Queries with nothing in flight once the samples budget is all started can never get another sample."""
        samples = self.config.budget.samples
        if samples is None or self.samples_started < samples:
            return []
        return [
            self._retire(arm, RetireReason.BUDGET, self._budget_detail())
            for arm in self._active()
            if arm.in_flight == 0
        ]

    def _budget_detail(self) -> str:
        return f"batch budget spent: {self.samples_started} samples, {self.tokens_spent} tokens"
