"""Text deltas from a growing list of token ids, with a detokeniser that only decodes whole sequences.

Decoding each new id on its own is wrong for real tokenisers: one character may span several ids, and
SentencePiece-style tokenisers drop the leading space of a sequence's first token. So, as in vLLM's incremental
detokenisation, each step decodes a short window twice, without and with the newest ids, and emits the
difference; text ending in an incomplete character (U+FFFD) is held back until more ids arrive or the stream ends.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

DecodeMany = Callable[[Sequence[Sequence[int]]], Awaitable[list[str]]]
"""Decodes several id sequences in one call, returning one text per sequence."""

INCOMPLETE_CHARACTER = "\ufffd"  # what a detokeniser shows for a character whose bytes have not all arrived


class IncrementalDetokenizer:
    def __init__(self, decode_many: DecodeMany) -> None:
        self._decode_many = decode_many
        self._ids: list[int] = []
        self._prefix_offset = 0  # start of the window, a few ids before the unread ones (context for decoding)
        self._read_offset = 0  # ids before this offset have been emitted as text

    async def push(self, new_ids: Sequence[int]) -> str:
        """Add ids; return the text they complete (may be empty while a character is incomplete)."""
        self._ids.extend(new_ids)
        return await self._advance(final=False) if new_ids else ""

    async def flush(self) -> str:
        """The text of ids still held back, at the end of the stream."""
        return await self._advance(final=True) if self._read_offset < len(self._ids) else ""

    async def _advance(self, final: bool) -> str:
        window = self._ids[self._prefix_offset :]
        known, extended = await self._decode_many([window[: self._read_offset - self._prefix_offset], window])
        if not final and (len(extended) <= len(known) or extended.endswith(INCOMPLETE_CHARACTER)):
            return ""
        self._prefix_offset, self._read_offset = self._read_offset, len(self._ids)
        return extended[len(known) :]
