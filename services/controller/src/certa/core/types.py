"""Values exchanged between strategies, the runtime and backends."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from certa.core.exit.trace import ProbeTrace


class StopReason(StrEnum):
    """Why a path or a request stopped."""

    CERTAIN = "certain"
    MODEL_FINISHED = "model_finished"
    BUDGET = "budget"
    CANCELLED = "cancelled"
    VOTED = "voted"
    ERROR = "error"  # a question of a batch whose sample failed: it has no answer


class RetireReason(StrEnum):
    """Why a query of a batch gets no more samples."""

    CERTAIN = "certain"  # its stop rule fired
    CAP = "cap"  # it drew its per-query maximum
    BUDGET = "budget"  # the batch's budget is spent
    ERROR = "error"  # the runtime gave up on it


class FinishReason(StrEnum):
    """How one backend call ended."""

    LENGTH = "length"  # max_tokens reached
    STOP = "stop"  # the model ended by itself (end token or stop word)
    CANCELLED = "cancelled"  # the runtime cancelled the call
    ERROR = "error"  # the call failed; what it had produced until then


class Purpose(StrEnum):
    """What a backend call is for; tokens are accounted per purpose."""

    PATH = "path"
    PROBE = "probe"


@dataclass(frozen=True)
class SamplingParams:
    """One sampling-parameters type; each backend adapter projects it onto its wire format."""

    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int | None = None
    repetition_penalty: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0

    @property
    def has_penalties(self) -> bool:
        """True when a penalty would change sampling; penalties restart with every backend call."""
        return self.repetition_penalty != 1.0 or self.presence_penalty != 0.0 or self.frequency_penalty != 0.0

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


@dataclass(frozen=True)
class Segment:
    """Text the model generated, with its token ids when the backend returns them.

    Keeping ids lets a token-level backend continue a path exactly, without re-tokenising its text.
    """

    text: str
    token_ids: tuple[int, ...] | None = None


PromptPiece = str | Segment
"""A prompt is a sequence of pieces: plain text (tokenised by the backend) and generated segments."""


def prompt_text(prompt: tuple[PromptPiece, ...]) -> str:
    """The prompt as one string (what a text-only backend receives)."""
    return "".join(piece if isinstance(piece, str) else piece.text for piece in prompt)


@dataclass(frozen=True)
class GenerationRequest:
    """One backend call a strategy asks for."""

    prompt: tuple[PromptPiece, ...]
    max_tokens: int
    sampling: SamplingParams
    purpose: Purpose = Purpose.PATH
    sample_index: int = 0
    stop: tuple[str, ...] = ()
    log_probs: bool = False  # ask the backend for each generated token's log-probability (probes' confidence)


@dataclass(frozen=True)
class TokenLogProbs:
    """Each generated token's log-probability, and where its text ends in the call's text (characters).

    Backends that stream several tokens in one piece give them all that piece's end.
    """

    log_probs: tuple[float, ...]
    text_ends: tuple[int, ...]


@dataclass(frozen=True)
class Outcome:
    """What one backend call produced, with token counts as the backend reported them."""

    segment: Segment
    tokens: int
    finish: FinishReason
    prompt_tokens: int = 0
    cached_prompt_tokens: int = 0
    log_probs: TokenLogProbs | None = None  # when asked for and the backend returned them
    fitted_max_tokens: int | None = None  # the backend lowered max_tokens to this to fit the model's context

    @property
    def text(self) -> str:
        return self.segment.text


@dataclass(frozen=True)
class ProbeRecord:
    """One certainty probe: where it was taken, what it said, and whether it sounded sure."""

    sample_index: int
    position_tokens: int
    answer: str
    confident: bool
    tokens: int
    confidence: float | None = None  # geometric-mean probability of the answer tokens, when log-probs came back
    trigger: str = ""  # what the probe was taken at: "chunk" or a path cue (calibrated exits only)


@dataclass(frozen=True)
class AnswerClass:
    """Answers judged equivalent, represented by the first one seen."""

    answer: str
    count: int
    first_sample: int


@dataclass(frozen=True)
class PathResult:
    """The result of one reasoning path (one sample)."""

    answer: str
    stop_reason: StopReason
    text: str
    path_tokens: int
    probe_tokens: int
    probes: tuple[ProbeRecord, ...] = ()
    sample_index: int = 0
    detail: str = ""  # why the path stopped where it did (calibrated exits: the profile and thresholds)
    traces: tuple[ProbeTrace, ...] = ()  # calibrated exits: every probe with its log-probs and path facts


@dataclass(frozen=True)
class Round:
    """One wave of a multi-sample strategy and the stop rule's verdict after it.

    `refined_from` lists, for each sample of the wave, the earlier samples its prompt showed as previous attempts
    (empty for an independent sample). `statistic` is the stop rule's own measure (certaindex, Beta probability,
    window agreement); `certaindex` is reported whatever the rule.
    """

    samples: tuple[int, ...]
    drawn: int
    certaindex: float
    statistic: float
    stop: bool
    reason: str
    refined_from: tuple[tuple[int, ...], ...] = ()


@dataclass(frozen=True)
class BatchTotals:
    """What a batch spent, and its size."""

    questions: int
    samples: int
    generated_tokens: int
    failed: int = 0  # questions given up on an error
    budget_samples: int = 0  # what the batch was given (0: no limit of that kind)
    budget_tokens: int = 0


@dataclass(frozen=True)
class StrategyResult:
    """What a strategy returns: the answer, why it stopped, and the evidence."""

    answer: str
    stop_reason: StopReason
    text: str
    samples: tuple[PathResult, ...]
    answer_classes: tuple[AnswerClass, ...] = field(default=())
    rounds: tuple[Round, ...] = ()
    stop_detail: str = ""
    batch: BatchTotals | None = None

    @property
    def probes(self) -> tuple[ProbeRecord, ...]:
        return tuple(probe for sample in self.samples for probe in sample.probes)
