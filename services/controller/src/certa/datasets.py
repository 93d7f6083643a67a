"""Benchmark questions with gold answers, read from JSON lines (GSM8K, MATH-500, AIME, AMC formats)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from certa.core.answers import extract_gsm8k_gold

GSM8K_TEST = Path(os.environ.get("CERTA_DATA_DIR", "../shared/data")) / "gsm8k_test.jsonl"


@dataclass(frozen=True)
class Question:
    index: int
    question: str
    gold: str


def load_questions(path: Path, limit: int | None = None, offset: int = 0) -> list[Question]:
    """Questions from `path`: GSM8K lines (`question`, `answer` with `#### gold`) or `problem`/`answer` lines."""
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
