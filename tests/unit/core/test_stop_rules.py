"""The answer tally and the stop rules of section 3, against the reference's worked values."""

from __future__ import annotations

import math

import pytest

from certa.core.answers import group_answers
from certa.core.errors import InvalidArgument
from certa.core.stop_rules import (
    BetaRule,
    CertaindexRule,
    EscRule,
    FixedCount,
    beta_majority_probability,
    validate_stop_rule,
)
from certa.core.tally import certaindex, tally

pytestmark = pytest.mark.unit


def test_tally_groups_like_group_answers_and_labels_every_sample() -> None:
    answers = ["\\frac{1}{2}", "0.5", "", "1/3", "\\dfrac{1}{2}", "1/3", "7"]
    counted = tally(answers)
    assert counted.classes == group_answers(answers)
    assert counted.labels == (0, 0, None, 1, 0, 1, 2)
    assert counted.top_counts == (3, 2)
    assert counted.unanswered == 1


@pytest.mark.parametrize(
    ("answers", "expected"),
    [
        (["18"] * 5, 1.0),
        (["1", "2", "3", "4", "5"], 0.0),
        (["", "", "", "", ""], 0.0),  # no answer never agrees
        (["18"], 0.0),  # one sample is no evidence
    ],
)
def test_certaindex_of_agreement_and_disagreement(answers: list[str], expected: float) -> None:
    assert tally(answers).certaindex == pytest.approx(expected)


def test_certaindex_is_one_minus_normalised_entropy() -> None:
    counts = [3, 1, 1]
    entropy = -sum(c / 5 * math.log(c / 5) for c in counts)
    assert certaindex(counts) == pytest.approx(1 - entropy / math.log(5))
    assert tally(["a", "b", "a", "c", "a"]).certaindex == pytest.approx(certaindex(counts))


def test_certaindex_rule_waits_for_its_minimum_then_compares_with_tau() -> None:
    rule = CertaindexRule(threshold=0.7, min_samples=5)
    assert not rule.decide(tally(["18"] * 4)).stop
    decision = rule.decide(tally(["18"] * 5))
    assert decision.stop and decision.statistic == pytest.approx(1.0)
    assert "certaindex 1.000 >= 0.7" in decision.reason
    assert not rule.decide(tally(["18", "18", "18", "7", "9"])).stop  # certaindex 0.41


@pytest.mark.parametrize(
    ("c1", "c2", "probability", "stops"),
    [(3, 0, 0.9375, False), (4, 0, 0.96875, True), (5, 1, 0.9375, False), (6, 1, 0.96484, True), (9, 3, 0.95386, True)],
)
def test_beta_rule_worked_values(c1: int, c2: int, probability: float, stops: bool) -> None:
    assert beta_majority_probability(c1, c2) == pytest.approx(probability, abs=5e-5)
    answers = ["18"] * c1 + ["7"] * c2
    decision = BetaRule(threshold=0.95).decide(tally(answers))
    assert decision.stop is stops
    assert decision.statistic == pytest.approx(probability, abs=5e-5)


def test_esc_stops_on_the_first_unanimous_window_with_its_answer() -> None:
    rule = EscRule(window=3)
    assert not rule.decide(tally(["5", "5"])).stop
    assert not rule.decide(tally(["5", "5", "6"])).stop
    # The second window is unanimous on 7 although 5 leads overall: ESC answers 7.
    first_windows = ["5", "5", "6", "7", "7", "7"]
    decision = rule.decide(tally(first_windows))
    assert decision.stop and decision.answer == "7"
    assert "window 2" in decision.reason
    # Windows are aligned: the three 7s straddling two windows do not count.
    assert not rule.decide(tally(["5", "6", "7", "7", "7", "8"])).stop


def test_esc_window_without_answers_is_not_unanimous() -> None:
    decision = EscRule(window=2).decide(tally(["", ""]))
    assert not decision.stop and decision.statistic == 0.0


def test_fixed_count_never_stops() -> None:
    assert not FixedCount().decide(tally(["1"] * 40)).stop


@pytest.mark.parametrize(
    ("rule", "field"),
    [
        (CertaindexRule(threshold=1.5), "sc.stop_rule.threshold"),
        (CertaindexRule(threshold=-0.1), "sc.stop_rule.threshold"),
        (CertaindexRule(threshold=float("nan")), "sc.stop_rule.threshold"),
        (CertaindexRule(min_samples=0), "sc.stop_rule.min_samples"),
        (EscRule(window=0), "sc.stop_rule.window"),
        (BetaRule(threshold=2.0), "sc.stop_rule.threshold"),
    ],
)
def test_invalid_parameters_name_their_field(rule: object, field: str) -> None:
    with pytest.raises(InvalidArgument) as raised:
        validate_stop_rule(rule, "sc.stop_rule")  # type: ignore[arg-type]
    assert raised.value.field == field


def test_valid_rules_pass_validation() -> None:
    for rule in (FixedCount(), CertaindexRule(), EscRule(), BetaRule(), CertaindexRule(threshold=0.0)):
        assert validate_stop_rule(rule) is rule
