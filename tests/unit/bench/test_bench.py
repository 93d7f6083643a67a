"""The benchmark's arithmetic: accuracy, savings against plain, and wrong early exits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from certa_bench.dynasor import PLAIN, REFERENCE_CONFIGS, Row, format_table, load_rows, summarise, write_outputs

pytestmark = pytest.mark.unit


def row(config: str, question: int, answer: str, gold: str, stop: str, path: int, probe: int) -> Row:
    return Row(config, question, gold, answer, answer == gold, stop, path, probe, 100, 90, probe // 5, 1.0)


ROWS = [
    row(PLAIN, 0, "18", "18", "model_finished", 200, 0),
    row(PLAIN, 1, "7", "5", "model_finished", 100, 0),
    row("high", 0, "9", "18", "certain", 120, 20),  # exited on an intermediate number: wrong exit
    row("high", 1, "7", "5", "certain", 60, 10),  # exited with plain's (wrong) answer: not a wrong exit
]


def test_summary_counts_wrong_exits_against_the_plain_path_and_savings_on_path_plus_probe() -> None:
    summaries = {s.config: s for s in summarise(ROWS, REFERENCE_CONFIGS)}
    assert set(summaries) == {PLAIN, "high"}
    high = summaries["high"]
    assert high.accuracy == 0.0 and summaries[PLAIN].accuracy == 0.5
    assert high.early_exits == 2 and high.wrong_early_exits == 1
    assert high.mean_total_tokens == 105.0
    assert high.saving_vs_plain == pytest.approx(1 - 210 / 300)
    assert "high" in format_table(list(summaries.values()))


def test_reports_round_trip_for_reuse(tmp_path: Path) -> None:
    paths = write_outputs(tmp_path, ROWS, summarise(ROWS, REFERENCE_CONFIGS), {"title": "t"})
    assert [path.suffix for path in paths] == [".json", ".png"] and paths[1].stat().st_size > 0
    assert load_rows(paths[0])[("high", 0)] == ROWS[2]
    assert json.loads(paths[0].read_text())["summary"][0]["config"] == PLAIN
