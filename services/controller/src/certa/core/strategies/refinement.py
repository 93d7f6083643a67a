"""Integrated parallel–sequential sampling: refinement prompts built from earlier samples (ALGORITHMS.md section 4).

A refinement is a new sample whose prompt holds the question and k earlier responses to it, presented as previous
attempts, and asks for a reconsidered solution ending in `\\boxed{}`. Our defaults (the paper gives none): k = 2,
each response cut to its last `attempt_chars` characters.

* **Characters, not tokens.** Results keep a sample's text, not its token ids (a Dynasor-CoT path's text also
  holds the early-exit answer, which has no ids), so the cap is a character count — about four characters per
  token for English and LaTeX. The *end* of a response is kept: that is where its conclusion and answer are.
* **The subset** is a random ordered subset of the pool (every earlier sample with text), drawn with a
  `random.Random` seeded from the request seed and the sample's own key. A sample's prompt therefore depends only
  on the seed and the pool it was given, not on the order in which concurrent samples finished, so a run replays
  exactly.
* **The template** is a parameter (`string.Template` with `$question` and `$attempts`, so the LaTeX braces of a
  maths prompt need no escaping); the default text ships in `certa/prompts/refine.txt`. The message it produces
  is turned into a prompt by `render` (the server applies the model's chat template; core knows no Jinja).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from string import Template

from certa.core.errors import InvalidArgument
from certa.core.types import PathResult, PromptPiece

PLACEHOLDERS = frozenset({"question", "attempts"})
TRUNCATION_MARK = "[…] "
ATTEMPT_HEADER = "### Previous attempt {number}\n"


@dataclass(frozen=True)
class Refinement:
    """How later samples refine earlier ones: the template, k attempts shown, the character cap of each."""

    template: str
    attempts: int = 2
    attempt_chars: int = 4000


def validate_refinement(refinement: Refinement, field: str = "refinement") -> Refinement:
    template = Template(refinement.template)
    if not template.is_valid() or set(template.get_identifiers()) != PLACEHOLDERS:
        raise InvalidArgument(
            f"{field}.template", "must be a string.Template using exactly $question and $attempts ($$ for a dollar)"
        )
    if refinement.attempts < 1:
        raise InvalidArgument(f"{field}.attempts", f"must be >= 1, got {refinement.attempts}")
    if refinement.attempt_chars < 1:
        raise InvalidArgument(f"{field}.attempt_chars", f"must be >= 1, got {refinement.attempt_chars}")
    return refinement


def _tail(text: str, limit: int) -> str:
    return text if len(text) <= limit else TRUNCATION_MARK + text[-limit:]


def refinement_message(refinement: Refinement, question: str, responses: Sequence[str]) -> str:
    """The user message of a refinement: the template filled with the question and the truncated responses."""
    attempts = "\n\n".join(
        ATTEMPT_HEADER.format(number=number) + _tail(text.strip(), refinement.attempt_chars)
        for number, text in enumerate(responses, start=1)
    )
    return Template(refinement.template).substitute(question=question.strip(), attempts=attempts)


Render = Callable[[str], tuple[PromptPiece, ...]]
"""Turns a user message into a prompt (the server applies the model's chat template)."""


def as_prompt(message: str) -> tuple[PromptPiece, ...]:
    """The message sent as is (no chat template)."""
    return (message,)


@dataclass(frozen=True)
class RefinementPlan:
    """A refinement setting bound to one request: its question, how a message becomes a prompt, the seed."""

    refinement: Refinement
    question: str
    seed: int
    render: Render = as_prompt

    def choose(self, pool: Sequence[PathResult], key: str) -> tuple[PathResult, ...]:
        """A random ordered subset of up to k samples of `pool` that have text, the same for the same key and pool."""
        candidates = [sample for sample in pool if sample.text.strip()]
        rng = random.Random(f"certa-refinement:{self.seed}:{key}")
        return tuple(rng.sample(candidates, min(self.refinement.attempts, len(candidates))))

    def prompt(self, attempts: Sequence[PathResult]) -> tuple[PromptPiece, ...]:
        return self.render(refinement_message(self.refinement, self.question, [sample.text for sample in attempts]))
