"""Where in a path a probe can pay: reasoning transitions and answer cues (DEER, LYNX).

A cue is looked for in the text the last chunk wrote (plus a short overlap with the chunk before, so a cue split
across two chunks is seen once). Facts about the whole path decide whether a probe could change anything:

* `candidate_written`: the path has stated a result (an answer cue, or a line that ends in `= number`). Before
  that, a probe can only repeat an intermediate number, so it is not sent.
* `answer_cue_written`: the path has written an answer cue ("the answer is", "final answer", `\\boxed`, "therefore
  / thus / hence / in total ... number"). The conservative default exits only after one.
"""

from __future__ import annotations

import re

from certa.core.answers import normalise
from certa.core.certainty import quantities

CHUNK = "chunk"
"""The trigger of a probe taken at a fixed chunk boundary with no cue in the chunk."""

OVERLAP_CHARS = 24
"""Characters of the previous chunk looked at again, so a cue split across chunks is still found."""

_NUMBER = r"-?\$?\d[\d,]*(?:\.\d+)?"
CUES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("boxed", re.compile(r"\\boxed\{")),
    ("answer", re.compile(r"\b(?:the (?:final )?answer is|final answer)\b", re.IGNORECASE)),
    ("therefore", re.compile(r"\b(?:therefore|thus|hence|in total)\b[^.\n]{0,80}?" + _NUMBER, re.IGNORECASE)),
    ("verify", re.compile(r"\b(?:let me|let's|let us) (?:check|verify|double-check)\b|\bdouble-check\b",
                          re.IGNORECASE)),
    ("wait", re.compile(r"\bwait\b", re.IGNORECASE)),
    ("alternatively", re.compile(r"\balternatively\b", re.IGNORECASE)),
    ("result", re.compile(r"=\s*" + _NUMBER + r"\s*(?:\\\)|\\\]|\$)?\s*(?:\n|$)")),
)
"""Cue name and pattern, most telling first: a chunk's trigger is the first that occurs in it."""

ANSWER_CUES = frozenset({"boxed", "answer", "therefore"})
RESULT_CUES = ANSWER_CUES | {"result"}


def chunk_trigger(path_text: str, chunk_start_chars: int) -> str:
    """The cue the text from `chunk_start_chars` on wrote (see `CUES`), or `CHUNK`."""
    window = path_text[max(chunk_start_chars - OVERLAP_CHARS, 0) :]
    for name, pattern in CUES:
        if pattern.search(window):
            return name
    return CHUNK


def _written(path_text: str, names: frozenset[str]) -> bool:
    return any(pattern.search(path_text) for name, pattern in CUES if name in names)


def candidate_written(path_text: str) -> bool:
    """Whether the path has stated a result (an answer cue or a line ending in `= number`)."""
    return _written(path_text, RESULT_CUES)


def answer_cue_written(path_text: str) -> bool:
    """Whether the path has written an answer cue (`ANSWER_CUES`)."""
    return _written(path_text, ANSWER_CUES)


def answer_in_path(answer: str, path_text: str) -> bool:
    """Whether the path itself wrote `answer`: every number in it, or (no number) its normalised text."""
    if not answer:
        return False
    numbers = quantities(answer)
    if numbers:
        return numbers <= quantities(path_text)
    return normalise(answer) in normalise(path_text)
