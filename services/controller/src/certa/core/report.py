"""What a run produces: its events as they happen, its outcome (the strategy's result, or what an interrupted run
generated) and its accounting."""

from __future__ import annotations

from dataclasses import dataclass

from certa.core.commands import Decision, QuestionFinished
from certa.core.types import ProbeRecord, StopReason, StrategyResult


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
class Interrupted:
    """What a run had generated when it stopped before its strategy returned (cancelled, failed, past its deadline).

    It has no answer, since the strategy reached none: `text` is the first sample's path as far as it was generated,
    consumed or not.
    """

    text: str
    cancelled: bool = False  # stopped by a cancellation (the run returned), not by an error (the run raised)

    @property
    def stop_reason(self) -> StopReason | None:
        """`cancelled` for a cancelled run; an interrupted run has no other stop reason."""
        return StopReason.CANCELLED if self.cancelled else None


@dataclass(frozen=True)
class SolveReport:
    """A run's outcome and its accounting.

    `outcome` is the strategy's result, exactly as the strategy returned it, for a finished run, and what an
    interrupted one had generated otherwise. `usage` and `probes` are the run's own records: every token the backends
    reported and every probe taken, in the order taken. They are not derived from the result, which lists only its
    samples' probes, in sample order (none for a batch, whose questions report theirs as they finish).
    """

    outcome: StrategyResult | Interrupted
    usage: Usage
    probes: tuple[ProbeRecord, ...]
    wall_time_s: float
    token_budget: int

    @property
    def complete(self) -> bool:
        """Whether the strategy finished, so that `outcome` is its result (with the answer it reached)."""
        return isinstance(self.outcome, StrategyResult)

    @property
    def tokens_saved_vs_budget(self) -> int:
        """Path tokens not generated compared with giving every sample its full budget (0 while incomplete)."""
        result = self.outcome
        if not isinstance(result, StrategyResult) or result.batch is not None:  # a batch's budget is its own
            return 0
        samples = max(len(result.samples), 1)
        return max(samples * self.token_budget - self.usage.path_tokens, 0)


RuntimeEvent = TextDelta | ProbeRecord | Decision | QuestionFinished | Resumed
"""What a run tells its clients while it goes, in order: streamed text, probes, decisions, finished batch questions
and resumptions. The store keeps them as the request's event stream."""
