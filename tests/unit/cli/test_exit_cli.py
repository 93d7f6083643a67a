"""`certa replay-exit` and `certa calibrate` on the checked-in small recording (seconds, no model)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from certa.cli import main
from certa.core.exit.profile import profile_from_dict

pytestmark = pytest.mark.unit

RECORDING = Path(__file__).parents[2] / "fixtures" / "exit" / "small_recording.jsonl"


def test_replay_exit_prints_every_policy_beside_plain(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay-exit", str(RECORDING)]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split() for line in out.splitlines()[3:8]}
    assert set(rows) == {"plain", "mid", "high", "crazy", "default"}
    assert rows["plain"][1:5] == ["4", "75.0%", "704", "+0.0%"]
    assert rows["crazy"][5:8] == ["2", "1", "1"]  # exits, premature, wrong


def test_calibrate_writes_a_profile_and_replay_uses_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "p.json"
    # four questions certify little: a loose confidence (delta 0.5) lets two exits pass at risk 0.5
    code = main(["calibrate", str(RECORDING), "--model-id", "scripted-model", "--alpha", "0.5", "--delta", "0.5",
                 "--half", "all", "--out", str(out)])
    assert code == 0
    profile = profile_from_dict(json.loads(out.read_text()))
    assert (profile.name, profile.model, profile.template, profile.chunk_tokens) == (
        "scripted-model", "scripted-model", "tmpl-1", 32)
    assert profile.levels[0].confidence.policy is not None
    assert profile.levels[0].confidence.policy.min_confidence == 0.98
    capsys.readouterr()
    assert main(["replay-exit", str(RECORDING), "--profile", str(out)]) == 0
    assert "auto@0.5" in capsys.readouterr().out


def test_calibrate_refuses_a_recording_of_another_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["calibrate", str(RECORDING), "--model-id", "qwen2.5-coder-0.5b", "--out", str(tmp_path / "p.json")])
    assert code == 2
    err = capsys.readouterr().err
    assert "recorded with model 'scripted-model', the profile claims 'qwen2.5-coder-0.5b'" in err
    assert not (tmp_path / "p.json").exists()


def test_a_malformed_recording_is_named_with_its_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(RECORDING.read_text().splitlines()[0] + "\n{\"question_id\": 1}\n")
    assert main(["replay-exit", str(bad)]) == 2
    assert "bad.jsonl:2: not a probe trace" in capsys.readouterr().err
