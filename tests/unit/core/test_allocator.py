"""The bandit allocator: warm-up, UCB on uncertainty, retirement, reservations and validation."""

from __future__ import annotations

import pytest

from certa.core.allocator import Allocator, AllocatorConfig, BatchBudget, Grant, Policy
from certa.core.errors import InvalidArgument
from certa.core.stop_rules import CertaindexRule, FixedCount
from certa.core.types import RetireReason

pytestmark = pytest.mark.unit


def config(**overrides: object) -> AllocatorConfig:
    values: dict[str, object] = {
        "budget": BatchBudget(samples=20),
        "sample_max_tokens": 100,
        "per_question_cap": 10,
        "warmup": 2,
        "exploration": 0.5,
        "stop_rule": FixedCount(),
    }
    values.update(overrides)
    return AllocatorConfig(**values)  # type: ignore[arg-type]


def grant_all(allocator: Allocator) -> list[Grant]:
    grants = []
    while (grant := allocator.grant()) is not None:
        grants.append(grant)
    return grants


def test_warmup_goes_round_robin_before_anything_else() -> None:
    allocator = Allocator(["a", "b", "c"], config())
    grants = [allocator.grant() for _ in range(6)]
    assert [(g.question, g.number) for g in grants] == [("a", 0), ("b", 0), ("c", 0), ("a", 1), ("b", 1), ("c", 1)]
    # Warm-ups still in flight: nobody is ready for the bandit yet.
    assert allocator.grant() is None


def test_after_warmup_the_most_uncertain_question_gets_the_next_samples() -> None:
    allocator = Allocator(["sure", "unsure"], config())
    for grant, answer in zip(grant_all(allocator)[:4], ["1", "5", "1", "6"], strict=True):  # warm-up: a, b, a, b
        allocator.settle(grant, answer, 10)
    assert allocator.grant().question == "unsure"  # certaindex 0 against 1


def test_exploration_bonus_spreads_slots_in_flight_over_questions() -> None:
    allocator = Allocator(["a", "b"], config())
    for grant, answer in zip(grant_all(allocator)[:4], ["1", "1", "2", "3"], strict=True):  # a: 1, 2; b: 1, 3
        allocator.settle(grant, answer, 10)
    first, second = allocator.grant(), allocator.grant()
    assert {first.question, second.question} == {"a", "b"}


def test_a_certain_question_retires_and_its_share_goes_to_the_others() -> None:
    rule = CertaindexRule(threshold=0.7, min_samples=3)
    allocator = Allocator(["easy", "hard"], config(budget=BatchBudget(samples=10), warmup=3, stop_rule=rule))
    warmup = [allocator.grant() for _ in range(6)]
    retired = []
    for grant, answer in zip(warmup, ["1", "1", "1", "2", "1", "3"], strict=True):  # easy, hard, easy, ...
        retired += allocator.settle(grant, answer, 10)
    assert [(r.question, r.reason) for r in retired] == [("easy", RetireReason.CERTAIN)]
    rest = grant_all(allocator)
    assert [g.question for g in rest] == ["hard"] * 4
    assert allocator.stats("easy").started == 3


def test_a_question_retires_at_its_cap() -> None:
    allocator = Allocator(["a"], config(per_question_cap=3, warmup=1))
    retired = []
    for _ in range(3):
        grant = allocator.grant()
        retired += allocator.settle(grant, str(grant.number), 5)
    assert [r.reason for r in retired] == [RetireReason.CAP]
    assert allocator.grant() is None and allocator.done


def test_token_reservations_bound_what_is_in_flight_and_are_released_on_settle() -> None:
    allocator = Allocator(["a", "b"], config(budget=BatchBudget(tokens=450), warmup=2))
    grants = grant_all(allocator)
    assert len(grants) == 4 and allocator.tokens_reserved == 400
    allocator.settle(grants[0], "1", 30)  # 70 released
    assert allocator.tokens_spent == 30 and allocator.tokens_reserved == 300
    assert allocator.grant() is None  # 30 + 300 + 100 > 450 while the warm-up is out
    for grant in grants[1:]:
        allocator.settle(grant, "1", 30)
    more = grant_all(allocator)
    assert len(more) == 3  # 120 spent + 3 x 100 reserved <= 450
    with pytest.raises(ValueError, match="reserved 100 tokens"):
        allocator.settle(more[0], "1", 101)


def test_spent_samples_budget_retires_questions_with_nothing_in_flight() -> None:
    allocator = Allocator(["a", "b"], config(budget=BatchBudget(samples=4), warmup=2))
    grants = grant_all(allocator)
    assert allocator.settle(grants[0], "1", 1) == []  # a, b, a, b
    assert allocator.settle(grants[1], "1", 1) == []
    retired = allocator.settle(grants[2], "1", 1)  # a's warm-up is back, and no sample is left
    assert [(r.question, r.reason) for r in retired] == [("a", RetireReason.BUDGET)]
    assert [r.question for r in allocator.settle(grants[3], "2", 1)] == ["b"]
    assert allocator.done


def test_close_retires_what_is_left_when_nothing_can_be_granted() -> None:
    allocator = Allocator(["a", "b"], config(budget=BatchBudget(tokens=400), warmup=2))
    grants = grant_all(allocator)
    with pytest.raises(RuntimeError):
        allocator.close()
    for grant in grants:
        allocator.settle(grant, "1", 100)
    assert allocator.grant() is None
    assert {(r.question, r.reason) for r in allocator.close()} == {
        ("a", RetireReason.BUDGET),
        ("b", RetireReason.BUDGET),
    }


def test_an_error_retires_a_question_and_its_late_answers_no_longer_count() -> None:
    allocator = Allocator(["a", "b"], config(warmup=1))
    first, second = allocator.grant(), allocator.grant()
    retirement = allocator.retire("a", RetireReason.ERROR, "backend failed")
    assert retirement.reason is RetireReason.ERROR
    assert allocator.settle(first, "1", 7) == []
    assert allocator.stats("a").tally.samples == 0 and allocator.stats("a").tokens == 7
    allocator.settle(second, "1", 7)
    assert all(grant.question == "b" for grant in grant_all(allocator))


def test_abandoned_samples_count_their_tokens_and_no_answer() -> None:
    allocator = Allocator(["a"], config(warmup=1))
    grant = allocator.grant()
    allocator.abandon(grant, 40)
    assert allocator.tokens_spent == 40 and allocator.stats("a").tally.samples == 0
    with pytest.raises(ValueError, match="not in flight"):
        allocator.abandon(grant, 0)


def test_uniform_policy_gives_every_slot_to_the_question_with_fewest_samples() -> None:
    allocator = Allocator(["a", "b", "c"], config(policy=Policy.UNIFORM, budget=BatchBudget(samples=9), warmup=1))
    assert [g.question for g in grant_all(allocator)] == ["a", "b", "c"] * 3


@pytest.mark.parametrize(
    ("questions", "overrides", "field"),
    [
        ([], {}, "batch.questions"),
        (["a", "b", "a"], {}, "batch.questions"),
        (["a", "b", "c", "d"], {}, "batch.questions"),  # over the limit of 3
        (["a", "b"], {"budget": BatchBudget(samples=3)}, "batch.budget.samples"),
        (["a", "b"], {"budget": BatchBudget(tokens=399)}, "batch.budget.tokens"),
        (["a", "b"], {"budget": BatchBudget()}, "batch.budget"),
        (["a"], {"per_question_cap": 0}, "batch.per_question_cap"),
        (["a"], {"warmup": 0}, "batch.warmup"),
        (["a"], {"warmup": 11}, "batch.warmup"),
        (["a"], {"exploration": -0.1}, "batch.exploration"),
        (["a"], {"sample_max_tokens": 0}, "batch.sample_max_tokens"),
        (["a"], {"stop_rule": CertaindexRule(threshold=1.1)}, "batch.stop_rule.threshold"),
    ],
)
def test_invalid_batches_name_their_field(questions: list[str], overrides: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidArgument) as raised:
        Allocator(questions, config(**overrides), max_questions=3)
    assert raised.value.field == field
