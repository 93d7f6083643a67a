"""The questions of `certa batch`: JSON lines, one question each, with an optional id.

A line is {"id": "q1", "question": "..."}; `problem` is accepted for `question` (the MATH-style data sets of data/
can be sent as they are), and a line without an id gets its line number. Blank lines are skipped.
"""

from __future__ import annotations

import json
from collections.abc import Iterable


def read_batch_questions(lines: Iterable[str], source: str) -> list[tuple[str, str]]:
    """(id, question) pairs from JSON lines; ValueError naming `source`, the line and the field on bad input."""
    questions: list[tuple[str, str]] = []
    seen: set[str] = set()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{source}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"{where}: not JSON ({error.msg})") from None
        if not isinstance(record, dict):
            raise ValueError(f"{where}: expected an object with 'question', got {type(record).__name__}")
        text = record.get("question", record.get("problem"))
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"{where}: 'question' (or 'problem') must be a non-empty string")
        question_id = record.get("id", str(number))
        if not isinstance(question_id, (str, int)) or isinstance(question_id, bool):
            raise ValueError(f"{where}: 'id' must be a string or an integer")
        question_id = str(question_id)
        if question_id in seen:
            raise ValueError(f"{where}: id {question_id!r} appears twice")
        seen.add(question_id)
        questions.append((question_id, text))
    if not questions:
        raise ValueError(f"{source}: no questions")
    return questions
