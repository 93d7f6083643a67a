"""The live self-consistency bench end to end against the real gRPC server (scripted backend): it records samples,
derives fixed-n from them, runs the live contenders and the replay, and writes its files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from certa_bench import consistency as consistency_bench

from certa.datasets import Question
from certa.server import CertaServer
from certa_client import Target

pytestmark = pytest.mark.integration


async def test_the_bench_records_compares_and_plots(server: CertaServer, tmp_path: Path) -> None:
    questions = [Question(0, "Q", "18"), Question(1, "[[vote:18,7]] Q", "18"), Question(2, "Other Q", "7")]
    target = Target(address=f"127.0.0.1:{server.port}")
    record = tmp_path / "consistency-samples.jsonl"
    points = await consistency_bench.run_bench(target, questions, 4, [1, 2], 300, record, deadline_s=60)
    consistency_bench.write_report(points, tmp_path, "test")
    report = json.loads((tmp_path / "consistency-bench.json").read_text())
    by_name = {(p["contender"], p["budget_per_question"]): p for p in report["points"]}
    assert by_name[("fixed n", 2)]["samples"] == 6
    assert by_name[("fixed n", 1)]["correct"] == 2  # the scripted model answers 18 (and 7 for the vote's odd seeds)
    assert by_name[("bandit + certaindex", 2)]["samples"] <= 6
    assert any(name.startswith("replay: bandit") for name, _ in by_name)
    recorded = [json.loads(line) for line in (tmp_path / "consistency-samples.jsonl").read_text().splitlines()]
    assert [len(q["answers"]) for q in recorded] == [4, 4, 4]
    assert (tmp_path / "consistency-bench-samples.png").stat().st_size > 0
