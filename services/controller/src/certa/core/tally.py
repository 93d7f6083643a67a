"""The answers of one query's samples, grouped into equivalence classes as they arrive (ALGORITHMS.md section 3).

A tally is built one answer at a time, so the classes are computed once per set of answers and reused by voting,
the stop rules and the bandit's statistics. Grouping follows `certa.core.answers.group_answers`: an answer joins
the first class (in order of appearance) whose representative it is equivalent to; empty answers join no class.

Certaindex treats every sample without an answer as a class of its own: it never agrees with anything, so it
lowers certainty instead of being ignored.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from certa.core.answers import equivalent
from certa.core.types import AnswerClass

Equivalence = Callable[[str, str], bool]
"""Whether two answers are the same answer. `equivalent` (maths-aware) unless a caller has canonicalised them."""


def certaindex(counts: Sequence[int]) -> float:
    """Normalised answer entropy: (ln n − H) / ln n for class counts summing to n; 1 when all samples agree.

    Fewer than two samples carry no evidence of agreement: 0.
    """
    n = sum(counts)
    if n < 2:
        return 0.0
    entropy = -sum(count / n * math.log(count / n) for count in counts if count > 0)
    return max(0.0, min(1.0, 1.0 - entropy / math.log(n)))


@dataclass(frozen=True)
class AnswerTally:
    """Answers in the order they were counted, the class of each (None: no answer), and the classes."""

    answers: tuple[str, ...] = ()
    labels: tuple[int | None, ...] = ()
    representatives: tuple[str, ...] = ()
    first_samples: tuple[int, ...] = ()
    counts: tuple[int, ...] = ()

    def add(self, answer: str, same: Equivalence = equivalent) -> AnswerTally:
        """The tally with one more sample's answer counted."""
        if not answer.strip():
            return replace(self, answers=(*self.answers, answer), labels=(*self.labels, None))
        label = next((label for label, rep in enumerate(self.representatives) if same(answer, rep)), None)
        if label is None:
            return replace(
                self,
                answers=(*self.answers, answer),
                labels=(*self.labels, len(self.representatives)),
                representatives=(*self.representatives, answer),
                first_samples=(*self.first_samples, len(self.answers)),
                counts=(*self.counts, 1),
            )
        counts = list(self.counts)
        counts[label] += 1
        return replace(self, answers=(*self.answers, answer), labels=(*self.labels, label), counts=tuple(counts))

    @property
    def samples(self) -> int:
        return len(self.answers)

    @property
    def unanswered(self) -> int:
        return self.labels.count(None)

    @property
    def classes(self) -> tuple[AnswerClass, ...]:
        """Largest first; ties keep the class seen first first (so a vote goes to the earliest sample)."""
        classes = (
            AnswerClass(answer=rep, count=count, first_sample=first)
            for rep, count, first in zip(self.representatives, self.counts, self.first_samples, strict=True)
        )
        return tuple(sorted(classes, key=lambda c: (-c.count, c.first_sample)))

    @property
    def top_counts(self) -> tuple[int, int]:
        """Sizes of the largest and the second largest class (0 when there is none)."""
        ranked = [*sorted(self.counts, reverse=True), 0, 0]
        return ranked[0], ranked[1]

    @property
    def certaindex(self) -> float:
        return certaindex(self.counts + (1,) * self.unanswered)


def tally(answers: Sequence[str], same: Equivalence = equivalent) -> AnswerTally:
    """The tally of `answers` counted in order."""
    result = AnswerTally()
    for answer in answers:
        result = result.add(answer, same)
    return result
