"""The text a path returns when it stops early (the reference's format, ALGORITHMS.md section 2)."""

from __future__ import annotations

from certa.core.types import PromptPiece, prompt_text

EARLY_EXIT_TEMPLATE = (
    "Oh, I have got the answer to the whole problem\n**Final Answer:**\n\\[\n \\boxed{{{answer}}}\n\\]"
)


def has_open_think(text: str) -> bool:
    """Whether the text (prompt and path) opened a `<think>` block it has not closed."""
    return text.rfind("<think>") > text.rfind("</think>")


def early_exit_text(prompt: tuple[PromptPiece, ...], path_text: str, answer: str) -> str:
    """The returned text on an early exit: the path, a closing `</think>` if the path left one open, the answer."""
    closing = "\n</think>\n\n" if has_open_think(prompt_text(prompt) + path_text) else "\n\n"
    return path_text + closing + EARLY_EXIT_TEMPLATE.format(answer=answer)
