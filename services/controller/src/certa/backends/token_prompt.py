"""A prompt as token ids: generated segments keep their ids, text pieces go through a server tokeniser."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from certa.core.types import PromptPiece, Segment

Encode = Callable[[str, bool], Awaitable[Sequence[int] | None]]
"""Tokenise `(text, at_start)`; None when the server cannot."""


async def prompt_ids(prompt: tuple[PromptPiece, ...], encode: Encode) -> list[int] | None:
    """The ids of the whole prompt, or None as soon as a text piece cannot be tokenised."""
    ids: list[int] = []
    for piece in prompt:
        if isinstance(piece, Segment) and piece.token_ids is not None:
            ids.extend(piece.token_ids)
            continue
        piece_ids = await encode(piece if isinstance(piece, str) else piece.text, not ids)
        if piece_ids is None:
            return None
        ids.extend(piece_ids)
    return ids
