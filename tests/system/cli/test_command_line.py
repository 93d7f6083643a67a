"""The command line itself, without a server: every option explains itself, --version, the batch file format."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

import certa
import certa_client
from certa.batch_file import read_batch_questions
from certa.cli import _parser

pytestmark = pytest.mark.unit


def _parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    found = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found += _parsers(sub)
    return found


def test_every_command_and_option_has_help() -> None:
    missing = [
        f"{parser.prog} {'/'.join(action.option_strings) or action.dest}"
        for parser in _parsers(_parser())
        for action in parser._actions
        if not isinstance(action, argparse._SubParsersAction) and not (action.help or "").strip()
    ]
    assert missing == []
    commands = {parser.prog.split()[-1] for parser in _parsers(_parser())}
    assert {"solve", "get", "cancel", "batch", "health"} <= commands


def test_version() -> None:
    run = subprocess.run([str(Path(sys.executable).parent / "certa"), "--version"], capture_output=True, text=True)
    assert run.returncode == 0
    assert run.stdout.strip() == f"certa {certa.__version__} (certa-client {certa_client.__version__})"


def test_batch_file_ids_default_to_line_numbers_and_problem_is_a_question() -> None:
    lines = ['{"id": "a", "question": "one"}', "", '{"problem": "two"}', '{"id": 7, "question": "three"}']
    assert read_batch_questions(lines, "q.jsonl") == [("a", "one"), ("3", "two"), ("7", "three")]


@pytest.mark.parametrize(
    ("lines", "says"),
    [
        (["not json"], "q.jsonl:1: not JSON"),
        (["[1]"], "q.jsonl:1: expected an object"),
        (['{"id": "a"}'], "q.jsonl:1: 'question' (or 'problem') must be a non-empty string"),
        (['{"id": true, "question": "x"}'], "q.jsonl:1: 'id' must be a string or an integer"),
        (['{"id": "a", "question": "x"}', '{"id": "a", "question": "y"}'], "q.jsonl:2: id 'a' appears twice"),
        (["", " "], "q.jsonl: no questions"),
    ],
)
def test_bad_batch_files_name_the_line_and_field(lines: list[str], says: str) -> None:
    with pytest.raises(ValueError, match="^" + says.replace("(", r"\(").replace(")", r"\)")):
        read_batch_questions(lines, "q.jsonl")
