"""Split a thinking model's output into its reasoning (`reasoning_content`) and its reply (`content`).

A path is reasoning while a `<think>` block is open: opened by the prompt (templates of thinking models end the
generation prompt with `<think>`) or by the output's first tag. The text after `</think>` is the reply. The same
splitter serves streamed text (a tag may arrive in pieces: a possible start of one is held back) and whole texts.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

OPEN, CLOSE = "<think>", "</think>"


class Part(StrEnum):
    REASONING = "reasoning"
    CONTENT = "content"


@dataclass(frozen=True)
class Piece:
    part: Part
    text: str


class ThinkSplitter:
    def __init__(self, thinking: bool) -> None:
        self._thinking = thinking
        self._held = ""
        self._at_start = True  # no reply text sent yet: an opening tag may still come, leading blank lines go

    def feed(self, text: str) -> list[Piece]:
        pieces: list[Piece] = []
        buffer = self._held + text
        self._held = ""
        while buffer:
            if self._thinking:
                end = buffer.find(CLOSE)
                if end >= 0:
                    self._add(pieces, Part.REASONING, buffer[:end])
                    buffer, self._thinking = buffer[end + len(CLOSE) :], False
                    continue
                keep = _partial_tag(buffer, CLOSE)
                self._add(pieces, Part.REASONING, buffer[: len(buffer) - keep])
                self._held = buffer[len(buffer) - keep :]
                break
            if self._at_start:
                stripped = buffer.lstrip()
                if stripped.startswith(OPEN):
                    buffer, self._thinking = stripped[len(OPEN) :], True
                    continue
                if not stripped or OPEN.startswith(stripped):
                    self._held = buffer  # blank so far, or a tag that may be `<think>`
                    break
                buffer = stripped
            self._add(pieces, Part.CONTENT, buffer)
            break
        return pieces

    def flush(self) -> list[Piece]:
        """What was held back, once the text is complete."""
        held, self._held = self._held, ""
        if not held:
            return []
        part = Part.REASONING if self._thinking else Part.CONTENT
        text = held if self._thinking else held.lstrip()
        return [Piece(part, text)] if text else []

    def _add(self, pieces: list[Piece], part: Part, text: str) -> None:
        if part is Part.CONTENT:
            self._at_start = False
        if text:
            pieces.append(Piece(part, text))


def _partial_tag(text: str, tag: str) -> int:
    """Length of the longest end of `text` that begins `tag`."""
    for size in range(min(len(tag) - 1, len(text)), 0, -1):
        if tag.startswith(text[-size:]):
            return size
    return 0


def split(text: str, thinking: bool) -> tuple[str, str]:
    """(reasoning, reply) of a whole text; the reasoning loses the blank lines around it."""
    splitter = ThinkSplitter(thinking)
    pieces = splitter.feed(text) + splitter.flush()
    reasoning = "".join(piece.text for piece in pieces if piece.part is Part.REASONING)
    reply = "".join(piece.text for piece in pieces if piece.part is Part.CONTENT)
    return reasoning.strip("\n"), reply
