"""Properties of the allocator under random answer streams and random orders of concurrent completions.

Each example drives the allocator the way the batch strategy does: keep up to `concurrency` samples in flight,
complete one of them (chosen at random) with a random answer and a random token count within its reservation,
cancel the samples of a question that retires, and close when nothing can be granted and nothing is in flight.
"""

from __future__ import annotations

import math
import operator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from certa.core.allocator import Allocator, AllocatorConfig, BatchBudget, Grant, Policy
from certa.core.arm_index import ArmIndex
from certa.core.stop_rules import BetaRule, CertaindexRule, EscRule, FixedCount

pytestmark = pytest.mark.unit

ANSWERS = st.sampled_from(["1", "2", "3", ""])
RULES = st.sampled_from([FixedCount(), CertaindexRule(0.7, 3), EscRule(2), BetaRule(0.8), CertaindexRule(0.0, 1)])


@st.composite
def batches(draw: st.DrawFn) -> tuple[list[str], AllocatorConfig, int]:
    questions = [f"q{i}" for i in range(draw(st.integers(1, 6)))]
    warmup = draw(st.integers(1, 3))
    cap = draw(st.integers(warmup, 8))
    sample_max_tokens = draw(st.integers(1, 50))
    warmups = warmup * len(questions)
    samples = draw(st.none() | st.integers(warmups, warmups + 30))
    tokens = draw(st.none() | st.integers(warmups * sample_max_tokens, (warmups + 30) * sample_max_tokens))
    if samples is None and tokens is None:
        samples = warmups
    config = AllocatorConfig(
        budget=BatchBudget(samples=samples, tokens=tokens),
        sample_max_tokens=sample_max_tokens,
        per_question_cap=cap,
        warmup=warmup,
        exploration=draw(st.floats(0.0, 2.0)),
        stop_rule=draw(RULES),
        policy=draw(st.sampled_from(list(Policy))),
    )
    return questions, config, draw(st.integers(1, 5))


@settings(max_examples=300, deadline=None)
@given(batch=batches(), data=st.data())
def test_budget_warmup_and_retirement_hold_for_any_interleaving(
    batch: tuple[list[str], AllocatorConfig, int], data: st.DataObject
) -> None:
    questions, config, concurrency = batch
    allocator = Allocator(questions, config, same=operator.eq)
    budget = config.budget
    in_flight: list[Grant] = []
    retired: set[str] = set()

    def check_budget() -> None:
        if budget.samples is not None:
            assert allocator.samples_started <= budget.samples
        if budget.tokens is not None:
            assert allocator.tokens_spent + allocator.tokens_reserved <= budget.tokens

    def retire(retirements: list) -> None:
        for retirement in retirements:
            assert retirement.question not in retired
            retired.add(retirement.question)
            for grant in [g for g in in_flight if g.question == retirement.question]:
                in_flight.remove(grant)
                retire(allocator.abandon(grant, data.draw(st.integers(0, grant.tokens), label="cancelled tokens")))

    for _ in range(1000):
        while len(in_flight) < concurrency and (grant := allocator.grant()) is not None:
            assert grant.question not in retired
            in_flight.append(grant)
            check_budget()
        if not in_flight:
            retire(allocator.close())
            break
        grant = in_flight.pop(data.draw(st.integers(0, len(in_flight) - 1), label="finishes next"))
        tokens = data.draw(st.integers(0, grant.tokens), label="tokens")
        retire(allocator.settle(grant, data.draw(ANSWERS, label="answer"), tokens))
        check_budget()

    assert allocator.done and retired == set(questions)
    if budget.tokens is not None:
        assert allocator.tokens_spent <= budget.tokens
    for question in questions:
        stats = allocator.stats(question)
        assert stats.started >= config.warmup
        assert stats.started <= config.per_question_cap
    assert sum(allocator.stats(q).started for q in questions) == allocator.samples_started


@settings(max_examples=200, deadline=None)
@given(
    updates=st.lists(
        st.tuples(st.integers(0, 7), st.integers(1, 12), st.floats(0.0, 1.0), st.booleans(), st.booleans()),
        min_size=1,
        max_size=60,
    ),
    exploration=st.floats(0.0, 2.0),
    total=st.integers(2, 500),
)
def test_the_arm_index_chooses_what_scoring_every_arm_would(
    updates: list[tuple[int, int, float, bool, bool]], exploration: float, total: int
) -> None:
    index = ArmIndex(8)
    latest: dict[int, tuple[int, float, bool, bool]] = {}
    for order, started, uncertainty, open_, ready in updates:
        index.update(order, started, uncertainty, open_=open_, ready=ready)
        latest[order] = (started, uncertainty, open_, ready)
    open_arms = {order: state for order, state in latest.items() if state[2]}
    fewest = min(((state[0], order) for order, state in open_arms.items()), default=None)
    assert index.fewest() == (None if fewest is None else (fewest[1], fewest[0]))
    scores = {
        order: uncertainty + exploration * math.sqrt(2 * math.log(total) / started)
        for order, (started, uncertainty, _, ready) in open_arms.items()
        if ready
    }
    best = min(scores, key=lambda order: (-scores[order], order), default=None)
    chosen = index.best(exploration, total)
    # an arm of the best score; ties broken by order, except where rounding makes a tie: the index ranks arms that
    # started alike by uncertainty first, so 1e-308 beats 0.0 there although both scores round to the same float
    assert (chosen is None) == (best is None)
    if chosen is not None and best is not None:
        assert scores[chosen] == scores[best]
