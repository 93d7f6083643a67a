"""`certa bench replay`: allocation policies and stop rules measured over pre-sampled answers, without a model.

Sampling is the expensive part of a multi-sample run and allocation the part worth tuning, so the two are split:
answers are sampled once (recorded from live runs, or drawn from a synthetic pool whose answer distributions are
known) and replayed through `certa.core.allocator.Allocator` under each policy. A question's k-th sample is always
its k-th recorded answer, so every policy sees the same draws and only the allocation differs; thousands of
questions replay in seconds.

File format: JSON lines, one question per line::

    {"id": "gsm8k-17", "gold": "18", "answers": ["18", "17", "", "18"], "tokens": [412, 388, 1024, 397]}

* ``id``: unique within the file; ``gold``: the reference answer.
* ``answers``: the extracted final answers of independent samples of the question, in the order they were drawn
  (``""``: the sample gave no answer).
* ``tokens`` (optional): generated tokens of each sample (path and probes), same length as ``answers``. Without
  it, tokens are not reported.

A question is never given more samples than it has recorded answers: the per-question cap is clipped to the
shortest list. Answers are grouped with the maths-aware equivalence once per question when the file is loaded
(``exact=True`` skips that for answers already in canonical form, like the synthetic pool's), and the replay then
compares them as strings.
"""

from __future__ import annotations

import json
import math
import operator
import random
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from certa.core.allocator import Allocator, AllocatorConfig, BatchBudget, Grant, Policy
from certa.core.answers import equivalent
from certa.core.stop_rules import BetaRule, CertaindexRule, EscRule, FixedCount, StopDecision, StopRule
from certa.core.strategies.samples import voted_answer
from certa.core.tally import tally

DEFAULT_WARMUP = 3
DEFAULT_EXPLORATION = 0.1
DEFAULT_CAP = 40


@dataclass(frozen=True)
class PooledQuestion:
    id: str
    gold: str
    answers: tuple[str, ...]
    tokens: tuple[int, ...] | None = None


@dataclass(frozen=True)
class Contender:
    """One allocation policy with one stop rule."""

    name: str
    policy: Policy
    stop_rule: StopRule


@dataclass(frozen=True)
class ReplayRow:
    contender: str
    questions: int
    correct: int
    samples: int
    tokens: int | None

    @property
    def accuracy(self) -> float:
        return self.correct / self.questions


def canonical(question: PooledQuestion) -> PooledQuestion:
    """The question with every answer (and the gold) replaced by the first answer equivalent to it."""
    counted = tally(question.answers)
    answers = tuple(counted.representatives[label] if label is not None else "" for label in counted.labels)
    gold = next((rep for rep in counted.representatives if equivalent(rep, question.gold)), question.gold)
    return replace(question, answers=answers, gold=gold)


def load_pool(path: Path, exact: bool = False) -> list[PooledQuestion]:
    """The questions of a replay file (see the module docstring)."""
    pool = []
    with path.open() as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            record = json.loads(line)
            answers = tuple(str(answer) for answer in record["answers"])
            tokens = tuple(int(count) for count in record["tokens"]) if "tokens" in record else None
            if tokens is not None and len(tokens) != len(answers):
                raise ValueError(f"{path}:{number}: 'tokens' and 'answers' differ in length")
            if not answers:
                raise ValueError(f"{path}:{number}: no answers")
            question = PooledQuestion(str(record["id"]), str(record["gold"]), answers, tokens)
            pool.append(question if exact else canonical(question))
    return pool


def synthetic_pool(questions: int, seed: int, samples_per_question: int = DEFAULT_CAP) -> list[PooledQuestion]:
    """Questions with known answer distributions, a mix like a maths benchmark's.

    * easy (45 %): the gold answer with probability 0.8–0.98;
    * contested (35 %): gold with probability 0.3–0.6, the rest spread over 2–5 wrong answers, so gold leads
      but a few samples often miss it — where extra samples pay;
    * hard (20 %): gold with probability 0.05–0.25 and one dominant wrong answer — where they do not.

    3 % of samples give no answer. Tokens per sample are log-normal around 400.
    """
    rng = random.Random(seed)
    pool = []
    for index in range(questions):
        gold = str(rng.randint(1, 10**6))
        kind = rng.random()
        wrong = [f"{gold}{suffix}" for suffix in ("1", "2", "3", "4", "5")[: rng.randint(2, 5)]]
        if kind < 0.45:
            p_gold, weights = rng.uniform(0.8, 0.98), [rng.random() for _ in wrong]
        elif kind < 0.8:
            p_gold, weights = rng.uniform(0.3, 0.6), [rng.random() for _ in wrong]
        else:
            p_gold, weights = rng.uniform(0.05, 0.25), [4.0] + [rng.random() for _ in wrong[1:]]
        scale = (1.0 - p_gold) / sum(weights)
        choices, probabilities = [gold, *wrong], [p_gold] + [weight * scale for weight in weights]
        answers = tuple(
            "" if rng.random() < 0.03 else rng.choices(choices, probabilities)[0] for _ in range(samples_per_question)
        )
        tokens = tuple(min(int(rng.lognormvariate(math.log(400), 0.4)), 4096) for _ in range(samples_per_question))
        pool.append(PooledQuestion(f"synthetic-{index}", gold, answers, tokens))
    return pool


def replay(pool: Sequence[PooledQuestion], config: AllocatorConfig, concurrency: int = 1) -> ReplayRow:
    """Run one allocator over the pool. Up to `concurrency` samples are in flight and complete in grant order;
    samples of a question that retires meanwhile are cancelled and counted with all their tokens."""
    questions = {question.id: question for question in pool}
    cap = min(config.per_question_cap, *(len(question.answers) for question in pool))
    config = replace(config, per_question_cap=cap, warmup=min(config.warmup, cap))
    allocator = Allocator(list(questions), config, same=operator.eq)
    in_flight: deque[Grant] = deque()

    def tokens(grant: Grant) -> int:
        recorded = questions[grant.question].tokens
        return recorded[grant.number] if recorded is not None else 0

    while True:
        while len(in_flight) < concurrency and (grant := allocator.grant()) is not None:
            in_flight.append(grant)
        if not in_flight:
            allocator.close()
            break
        grant = in_flight.popleft()
        retired = allocator.settle(grant, questions[grant.question].answers[grant.number], tokens(grant))
        for retirement in retired:
            for running in allocator.in_flight_grants(retirement.question):
                in_flight.remove(running)
                allocator.abandon(running, tokens(running))
    correct = 0
    for question in pool:
        stats = allocator.stats(question.id)
        decision = stats.decision or StopDecision(False, "", 0.0)
        correct += voted_answer(stats.tally, decision) == question.gold
    with_tokens = all(question.tokens is not None for question in pool)
    return ReplayRow("", len(pool), correct, allocator.samples_started, allocator.tokens_spent if with_tokens else None)


def contenders() -> list[Contender]:
    """The baseline, uniform allocation with each stop rule, and the bandit with each (reference thresholds)."""
    rules: list[tuple[str, StopRule]] = [
        ("certaindex", CertaindexRule()),
        ("esc", EscRule()),
        ("beta", BetaRule()),
    ]
    return [
        Contender("uniform, fixed n", Policy.UNIFORM, FixedCount()),
        *(Contender(f"uniform + {name}", Policy.UNIFORM, rule) for name, rule in rules),
        Contender("bandit", Policy.BANDIT, FixedCount()),
        *(Contender(f"bandit + {name}", Policy.BANDIT, rule) for name, rule in rules),
    ]


def compare(
    pool: Sequence[PooledQuestion],
    samples_per_question: int,
    *,
    warmup: int = DEFAULT_WARMUP,
    exploration: float = DEFAULT_EXPLORATION,
    cap: int = DEFAULT_CAP,
    concurrency: int = 1,
    entrants: Sequence[Contender] | None = None,
) -> list[ReplayRow]:
    """Every contender at the same total budget: `samples_per_question` x questions samples.

    The fixed-n baseline draws exactly `samples_per_question` for every question; the others may draw up to `cap`
    for one question and stop early where their rule allows.
    """
    budget = BatchBudget(samples=samples_per_question * len(pool))
    max_tokens = max((max(q.tokens) for q in pool if q.tokens), default=1)
    rows = []
    for contender in entrants or contenders():
        fixed = isinstance(contender.stop_rule, FixedCount) and contender.policy is Policy.UNIFORM
        config = AllocatorConfig(
            budget=budget,
            sample_max_tokens=max_tokens,
            per_question_cap=samples_per_question if fixed else cap,
            warmup=1 if fixed else warmup,  # fixed n has no warm-up to speak of
            exploration=exploration,
            stop_rule=contender.stop_rule,
            policy=contender.policy,
        )
        rows.append(replace(replay(pool, config, concurrency), contender=contender.name))
    return rows


def fixed_n(pool: Sequence[PooledQuestion], n: int) -> ReplayRow:
    """Fixed-n self-consistency: the vote over each question's first n samples (uniform allocation, no stop rule)."""
    [row] = compare(pool, n, entrants=[Contender(f"fixed n = {n}", Policy.UNIFORM, FixedCount())])
    return row


def format_table(rows: Sequence[ReplayRow], budget: int) -> str:
    header = f"{'allocator':<30s} {'accuracy':>8s} {'samples':>8s} {'per q':>6s} {'tokens':>11s} {'vs fixed':>8s}"
    baseline = rows[0].accuracy
    lines = [header, "-" * len(header)]
    for row in rows:
        tokens = f"{row.tokens:>11d}" if row.tokens is not None else f"{'-':>11s}"
        lines.append(
            f"{row.contender:<30s} {row.accuracy:>8.1%} {row.samples:>8d} {row.samples / row.questions:>6.2f} "
            f"{tokens} {(row.accuracy - baseline) * 100:>+7.1f}p"
        )
    lines.append(
        f"{rows[0].questions} questions, a budget of {budget} samples per question on average "
        f"({budget * rows[0].questions} in all); vs fixed = accuracy points over uniform fixed-n"
    )
    return "\n".join(lines)
