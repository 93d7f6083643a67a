"""Answer extraction and maths-aware equivalence."""

from __future__ import annotations

import pytest

from certa.core.answers import (
    equivalent,
    extract_boxed,
    extract_gsm8k_gold,
    extract_probe_answer,
    group_answers,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("so \\boxed{18}.", "18"),
        ("first \\boxed{3} then \\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),
        ("nested \\boxed{\\sqrt{\\frac{a}{b}}} end", "\\sqrt{\\frac{a}{b}}"),
        ("complete \\boxed{7} then broken \\boxed{8", "7"),
        ("no box at all", ""),
    ],
)
def test_extract_boxed_takes_the_last_complete_box(text: str, answer: str) -> None:
    assert extract_boxed(text) == answer


@pytest.mark.parametrize(
    ("probe", "answer"),
    [
        ("18}\n\\]", "18"),
        ("\\frac{1}{2}} done", "\\frac{1}{2}"),
        ("{nested}}", "{nested}"),
        ("no brace", ""),
        ("}", ""),
    ],
)
def test_probe_answer_ends_at_the_first_unmatched_brace(probe: str, answer: str) -> None:
    assert extract_probe_answer(probe) == answer


def test_gsm8k_gold_drops_thousands_separators() -> None:
    assert extract_gsm8k_gold("work\n#### 1,234") == "1234"
    assert extract_gsm8k_gold("no marker") == ""


@pytest.mark.parametrize(
    ("first", "second"),
    [("\\frac{1}{2}", "0.5"), ("1/2", "0.5"), ("18", "18.0"), ("x+1", "1+x"), ("\\dfrac{3}{4}", "0.75"),
     ("\\text{yes}", "yes"), ("$5$", "5")],
)
def test_equivalent_answers(first: str, second: str) -> None:
    assert equivalent(first, second)


@pytest.mark.parametrize(("first", "second"), [("18", "17"), ("", ""), ("", "0"), ("1/2", "1/3")])
def test_different_or_empty_answers(first: str, second: str) -> None:
    assert not equivalent(first, second)


def test_very_long_answers_compare_as_strings_only() -> None:
    long = "1+" * 100 + "1"
    assert equivalent(long, long)
    assert not equivalent(long, "101")


def test_groups_are_largest_first_with_earliest_first_on_ties() -> None:
    classes = group_answers(["0.5", "7", "\\frac{1}{2}", "", "7"])
    assert [(c.answer, c.count, c.first_sample) for c in classes] == [("0.5", 2, 0), ("7", 2, 1)]


@pytest.mark.parametrize("hostile", ["10^{10^{10}}", "2^{10^{6}}", "1000000!", "9^{9^{9^{9}}}"])
def test_answers_sympy_cannot_compare_quickly_fall_back_to_strings(hostile: str) -> None:
    assert not equivalent(hostile, "5")
    assert equivalent(hostile, hostile)


def test_ordinary_powers_and_roots_still_compare_symbolically() -> None:
    assert equivalent("2^{10}", "1024")
    assert equivalent("\\sqrt{4}", "2")
    assert equivalent("x^2 + 2x + 1", "(x+1)^2")
