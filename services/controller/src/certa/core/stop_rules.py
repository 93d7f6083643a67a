"""When a query has enough samples: pluggable stop rules over its tally (ALGORITHMS.md section 3).

Every rule looks at the answers drawn so far (an `AnswerTally`) and returns a `StopDecision`: whether to stop, why,
and the statistic behind the verdict, so results can report it per round. Rules are values: frozen, comparable,
validated by `validate_stop_rule`, which names the offending field.

* `FixedCount`: never stops early; the caller draws its maximum (fixed-n self-consistency, the baseline).
* `CertaindexRule`: stop when the normalised answer entropy's certaindex reaches τ, once enough samples exist
  *(ref: τ = 0.7 after 5 samples on MATH and GSM8K)*.
* `EscRule`: early-stopping self-consistency; samples form consecutive windows of w in the order they were counted,
  and the first window whose answers are all equivalent stops the query with that window's answer *(ref: w = 5)*.
* `BetaRule`: Adaptive-Consistency; P = 1 − I_{1/2}(c1 + 1, c2 + 1) for the two largest classes, stop when
  P ≥ threshold *(ref: 0.95)*. For integer arguments the regularised incomplete beta is a binomial tail, computed
  exactly: I_{1/2}(a, b) = Σ_{j=a}^{a+b−1} C(a+b−1, j) / 2^{a+b−1}.

The sample maximum (ref: 40 for ESC and the Beta rule) belongs to the strategy that draws the samples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from certa.core.errors import InvalidArgument
from certa.core.tally import AnswerTally


@dataclass(frozen=True)
class StopDecision:
    """A rule's verdict. `answer` is set when the rule settles on an answer other than the plain majority (ESC)."""

    stop: bool
    reason: str
    statistic: float
    answer: str | None = None


@dataclass(frozen=True)
class FixedCount:
    """Never stop early."""

    statistic_name = "certaindex"

    def decide(self, tally: AnswerTally) -> StopDecision:
        return StopDecision(False, "fixed number of samples", tally.certaindex)


@dataclass(frozen=True)
class CertaindexRule:
    threshold: float = 0.7
    min_samples: int = 5

    statistic_name = "certaindex"

    def decide(self, tally: AnswerTally) -> StopDecision:
        value = tally.certaindex
        if tally.samples < self.min_samples:
            return StopDecision(False, f"{tally.samples} of {self.min_samples} samples before the first check", value)
        if value >= self.threshold:
            return StopDecision(True, f"certaindex {value:.3f} >= {self.threshold:g}", value)
        return StopDecision(False, f"certaindex {value:.3f} < {self.threshold:g}", value)


@dataclass(frozen=True)
class EscRule:
    window: int = 5

    statistic_name = "window agreement"

    def decide(self, tally: AnswerTally) -> StopDecision:
        complete = tally.samples // self.window
        if complete == 0:
            return StopDecision(False, f"{tally.samples} of {self.window} samples of the first window", 0.0)
        for number in range(complete):
            labels = tally.labels[number * self.window : (number + 1) * self.window]
            if labels[0] is not None and labels.count(labels[0]) == self.window:
                answer = tally.representatives[labels[0]]
                return StopDecision(True, f"window {number + 1} of {self.window} samples is unanimous", 1.0, answer)
        return StopDecision(False, f"none of {complete} windows is unanimous", self._agreement(tally, complete - 1))

    def _agreement(self, tally: AnswerTally, number: int) -> float:
        """Share of the window's samples in its most common class."""
        window = tally.labels[number * self.window : (number + 1) * self.window]
        labels = [label for label in window if label is not None]
        return max((labels.count(label) for label in labels), default=0) / self.window


def beta_majority_probability(first: int, second: int) -> float:
    """P = 1 − I_{1/2}(first + 1, second + 1): the posterior probability that the leading answer is the mode."""
    a, b = first + 1, second + 1
    n = a + b - 1
    tail = sum(math.comb(n, j) for j in range(a, n + 1))
    return 1.0 - tail / (1 << n)


@dataclass(frozen=True)
class BetaRule:
    threshold: float = 0.95

    statistic_name = "beta probability"

    def decide(self, tally: AnswerTally) -> StopDecision:
        first, second = tally.top_counts
        value = beta_majority_probability(first, second)
        verdict = ">=" if value >= self.threshold else "<"
        return StopDecision(value >= self.threshold, f"P(majority) {value:.4f} {verdict} {self.threshold:g}", value)


StopRule = FixedCount | CertaindexRule | EscRule | BetaRule
DEFAULT_STOP_RULE = CertaindexRule()


def _unit_interval(value: float, field: str) -> None:
    if not 0.0 <= value <= 1.0:
        raise InvalidArgument(field, f"must be in [0, 1], got {value:g}")


# A sample count a rule waits for: far above any sensible sample cap (the server's default is 64), so a value past it
# can only be a mistake that would run every query to its cap.
MAX_RULE_SAMPLES = 1024


def _rule_samples(value: int, field: str) -> None:
    if not 1 <= value <= MAX_RULE_SAMPLES:
        raise InvalidArgument(field, f"must be in [1, {MAX_RULE_SAMPLES}], got {value}")


def validate_stop_rule(rule: StopRule, field: str = "stop_rule") -> StopRule:
    """`rule` when its parameters are in range; `InvalidArgument` naming `field.<parameter>` otherwise."""
    if isinstance(rule, CertaindexRule):
        _unit_interval(rule.threshold, f"{field}.threshold")
        _rule_samples(rule.min_samples, f"{field}.min_samples")
    elif isinstance(rule, EscRule):
        _rule_samples(rule.window, f"{field}.window")
    elif isinstance(rule, BetaRule):
        _unit_interval(rule.threshold, f"{field}.threshold")
    elif not isinstance(rule, FixedCount):
        raise InvalidArgument(field, f"unknown stop rule {rule!r}")
    return rule
