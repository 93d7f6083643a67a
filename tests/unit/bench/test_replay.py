"""The replay bench: at equal total samples the bandit beats uniform allocation on a seeded synthetic pool."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from certa_bench.online_replay import OnlineSetup, compare_online
from certa_bench.replay import (
    Contender,
    compare,
    format_table,
    load_pool,
    synthetic_pool,
)

from certa.core.allocator import Policy
from certa.core.stop_rules import CertaindexRule, FixedCount

pytestmark = pytest.mark.unit

UNIFORM = Contender("uniform, fixed n", Policy.UNIFORM, FixedCount())
BANDIT = Contender("bandit + certaindex", Policy.BANDIT, CertaindexRule())


def test_bandit_beats_uniform_allocation_at_equal_total_samples() -> None:
    pool = synthetic_pool(1000, seed=0)
    uniform, bandit = compare(pool, 6, entrants=[UNIFORM, BANDIT])
    assert uniform.samples == bandit.samples == 6000
    print(
        f"\nuniform {uniform.accuracy:.1%}, bandit {bandit.accuracy:.1%}: "
        f"{(bandit.accuracy - uniform.accuracy) * 100:+.1f} points at {uniform.samples} samples"
    )
    assert bandit.accuracy > uniform.accuracy


def test_stop_rules_save_samples_when_the_budget_is_generous() -> None:
    pool = synthetic_pool(300, seed=1)
    fixed, certaindex = compare(pool, 40, entrants=[UNIFORM, Contender("c", Policy.UNIFORM, CertaindexRule())])
    assert fixed.samples == 300 * 40
    assert certaindex.samples < fixed.samples * 0.7
    assert certaindex.accuracy >= fixed.accuracy - 0.02


def test_the_synthetic_pool_and_the_replay_are_deterministic() -> None:
    assert synthetic_pool(50, seed=3) == synthetic_pool(50, seed=3) != synthetic_pool(50, seed=4)
    pool = synthetic_pool(200, seed=3)
    assert compare(pool, 5, concurrency=4) == compare(pool, 5, concurrency=4)
    assert "bandit + beta" in format_table(compare(pool, 5), 5)


def test_a_replay_file_is_grouped_by_maths_equivalence_and_caps_questions_at_their_answers(tmp_path: Path) -> None:
    path = tmp_path / "pool.jsonl"
    lines = [
        {"id": "half", "gold": "1/2", "answers": ["0.5", "\\frac{1}{2}", "1/3", "0.5"], "tokens": [10, 20, 30, 40]},
        {"id": "six", "gold": "6", "answers": ["6", "", "7", "6", "6"], "tokens": [5, 5, 5, 5, 5]},
    ]
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    pool = load_pool(path)
    assert pool[0].answers == ("0.5", "0.5", "1/3", "0.5") and pool[0].gold == "0.5"
    rows = compare(pool, 4, warmup=2, cap=40, entrants=[UNIFORM, BANDIT])
    assert all(row.correct == 2 for row in rows)
    assert rows[0].tokens == 10 + 20 + 30 + 40 + 5 * 4


def test_a_malformed_replay_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"id": "x", "gold": "1", "answers": ["1", "2"], "tokens": [3]}) + "\n")
    with pytest.raises(ValueError, match="differ in length"):
        load_pool(path)


def test_online_pool_beats_fixed_n_and_first_come_first_served_with_arrivals_over_time() -> None:
    pool = synthetic_pool(600, seed=3)
    fixed, fixed_more, unpooled, uncertain_first, first_come = compare_online(pool, OnlineSetup(samples_per_question=4))
    per_question = uncertain_first.samples / uncertain_first.questions
    # it spends about n per question (the pool keeps refilling while the last questions finish) ...
    assert fixed.samples / fixed.questions == 4 and 4 <= per_question < 4.5
    # ... and answers more than fixed n, even than fixed n + 1, which spends more
    assert uncertain_first.correct > fixed_more.correct > fixed.correct
    # ranking by uncertainty is what pays: the same pool served in arrival order does worse
    assert uncertain_first.correct > first_come.correct
    assert unpooled.samples > 1.4 * uncertain_first.samples  # Certaindex alone, with no budget, spends far more
