"""The hesitation check and the exit rule."""

from __future__ import annotations

import pytest

from certa.core.certainty import CertaintyRule, hesitates, quantities, settled
from certa.core.types import ProbeRecord

pytestmark = pytest.mark.unit


def probes(*items: tuple[str, bool]) -> list[ProbeRecord]:
    return [ProbeRecord(0, 10 * (i + 1), answer, confident, 5) for i, (answer, confident) in enumerate(items)]


@pytest.mark.parametrize("text", ["Wait, 18", "hmm", "18 but", "OKAY then", "No.", "hold on"])
def test_hesitation_words(text: str) -> None:
    assert hesitates(text)


@pytest.mark.parametrize("text", ["I know 18", "not sure", "button", "holder", "18}", "Nobody", "waiting"])
def test_words_containing_hesitation_words_do_not_hesitate(text: str) -> None:
    assert not hesitates(text)


def test_strict_rule_needs_threshold_agreeing_confident_probes() -> None:
    rule = CertaintyRule(threshold=3)
    assert not rule.is_certain(probes(("18", True), ("18", True)))
    assert rule.is_certain(probes(("5", True), ("18", True), ("18.0", True), ("18", True)))
    assert not rule.is_certain(probes(("18", True), ("18", False), ("18", True)))
    assert not rule.is_certain(probes(("", True), ("", True), ("", True)))
    assert not rule.is_certain(probes(("18", True), ("17", True), ("18", True)))


def test_window_rule_counts_agreement_with_the_latest_probe() -> None:
    rule = CertaintyRule(threshold=3, window=4, consistency=0.75)
    assert rule.is_certain(probes(("17", True), ("18", True), ("18", True), ("18", True)))
    assert not rule.is_certain(probes(("17", True), ("16", True), ("18", True), ("18", True)))
    assert not rule.is_certain(probes(("18", True), ("18", True), ("18", True), ("18", False)))
    assert not rule.is_certain(probes(("18", True), ("18", True), ("18", True)))


def test_quantities_are_normalised_numbers() -> None:
    assert quantities("16 - 3 = 13, $1,200.50 and 2.0 or 7.") == {"16", "3", "13", "1200.5", "2", "7"}
    assert quantities("x2 and v1.5") == set()


def test_a_path_that_wrote_a_new_number_is_not_settled() -> None:
    before = "Janet has 16 eggs and eats 3. So 16 - 3 = 13."
    assert not settled(before, " She bakes with 4, so 13 - 4 = 9 remain.", "13")
    assert settled(before, " She sells the 13 remaining eggs.", "13")
    assert settled(before, " So the answer is 26.", "26")


def test_window_rule_does_not_count_hesitating_probes_that_agree() -> None:
    unanimous = CertaintyRule(threshold=3, window=4, consistency=1.0)
    assert unanimous.is_certain(probes(("18", True), ("18", True), ("18", True), ("18", True)))
    assert not unanimous.is_certain(probes(("18", False), ("18", True), ("18", True), ("18", True)))
    assert not unanimous.is_certain(probes(("18", True), ("", True), ("18", True), ("18", True)))
