"""What a run produces: its events as they happen, the result (or the partial result of an interrupted run) and its
accounting."""

from __future__ import annotations

from dataclasses import dataclass

from certa.core.commands import Decision, QuestionFinished
from certa.core.types import AnswerClass, BatchTotals, PathResult, ProbeRecord, Round, StopReason


@dataclass(frozen=True)
class Usage:
    """Tokens as the backend reported them, summed over every call of the run (cancelled calls included)."""

    prompt_tokens: int = 0
    path_tokens: int = 0
    probe_tokens: int = 0
    cached_prompt_tokens: int = 0


@dataclass(frozen=True)
class TextDelta:
    """Text streamed by a path call, as it arrives."""

    sample_index: int
    text: str
    path_tokens: int


@dataclass(frozen=True)
class PathProgress:
    """How much of a sample's path a checkpoint holds: characters of text and path tokens."""

    sample_index: int
    text_chars: int
    path_tokens: int


@dataclass(frozen=True)
class Resumed:
    """The request continues on this replica from its last checkpoint; streamed text after `paths` is redone."""

    attempt: int
    paths: tuple[PathProgress, ...]


@dataclass(frozen=True)
class SolveReport:
    """A run's outcome.

    A finished run has `stop_reason` set and `answer` is what the strategy reached. An interrupted run (error,
    deadline, cancellation) has `complete` False: `answer` is empty, and `text`, `usage` and `probes` hold what
    was generated before the interruption.
    """

    answer: str
    stop_reason: StopReason | None
    text: str
    usage: Usage
    probes: tuple[ProbeRecord, ...]
    samples: tuple[PathResult, ...]
    answer_classes: tuple[AnswerClass, ...]
    wall_time_s: float
    token_budget: int
    complete: bool
    rounds: tuple[Round, ...] = ()
    stop_detail: str = ""
    batch: BatchTotals | None = None

    @property
    def tokens_saved_vs_budget(self) -> int:
        """Path tokens not generated compared with giving every sample its full budget (0 while incomplete)."""
        if not self.complete or self.batch is not None:  # a batch's budget is its own (see `batch`)
            return 0
        samples = max(len(self.samples), 1)
        return max(samples * self.token_budget - self.usage.path_tokens, 0)


RuntimeEvent = TextDelta | ProbeRecord | Decision | QuestionFinished | Resumed
"""What a run tells its clients while it goes, in order: streamed text, probes, decisions, finished batch questions
and resumptions. The store keeps them as the request's event stream."""
