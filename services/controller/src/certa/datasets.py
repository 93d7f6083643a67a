"""Benchmark questions with gold answers, read from JSON lines (GSM8K, MATH-500, AIME, AMC formats).

The data sets ship in the repository's `data/` folder (data/README.md gives their sources and licences).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import certa
from certa.core.answers import extract_gsm8k_gold

DATA_ENV = "CERTA_DATA_DIR"
GSM8K_FILE = "gsm8k_test.jsonl"


class DataNotFound(FileNotFoundError):
    """A data set file that is not there, with what to do about it."""


def repository_data_dir() -> Path:
    """`data/` of the source checkout this package is installed from (editable installs, as `make install` does):
    the package is services/controller/src/certa of the repository."""
    return Path(certa.__file__).resolve().parents[4] / "data"


def data_file(name: str, data_dir: str = "") -> Path:
    """The data set `name` in `data_dir` (e.g. $CERTA_DATA_DIR) or, when empty, in the repository's data/."""
    return (Path(data_dir) if data_dir else repository_data_dir()) / name


# The default --data of the demo and the benches.
GSM8K_TEST = data_file(GSM8K_FILE, os.environ.get(DATA_ENV, ""))


@dataclass(frozen=True)
class Question:
    index: int
    question: str
    gold: str


def load_questions(path: Path, limit: int | None = None, offset: int = 0) -> list[Question]:
    """Questions from `path`: GSM8K lines (`question`, `answer` with `#### gold`) or `problem`/`answer` lines."""
    if not path.is_file():
        raise DataNotFound(
            f"no data set at {path}: pass --data FILE (JSON lines) or set {DATA_ENV} to a folder holding "
            f"{path.name}; a clone of the repository has them in data/"
        )
    questions = []
    with path.open() as lines:
        for index, line in enumerate(lines):
            if index < offset or not line.strip():
                continue
            record = json.loads(line)
            text = record.get("question") or record.get("problem")
            answer = str(record.get("answer", ""))
            if text is None:
                raise ValueError(f"{path}:{index + 1}: no 'question' or 'problem' field")
            gold = extract_gsm8k_gold(answer) if "####" in answer else answer.strip()
            questions.append(Question(index, text, gold))
            if limit is not None and len(questions) >= limit:
                break
    return questions
