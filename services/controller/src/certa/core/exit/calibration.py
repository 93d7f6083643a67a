"""Calibrating exits to a risk level (LYNX-style risk control; ALGORITHMS.md section 2b).

The risk of a policy is its **premature-exit rate among its exits**: the share of its exits whose answer differs
from the one the unstopped path reaches (the measure the exit bench reports). On a recording a policy exits on e
questions, k of them prematurely; its Clopper–Pearson upper bound at confidence 1 − δ is the p with
P(Binomial(e, p) ≤ k) = δ. A policy with few exits therefore needs them all right: with no premature exit the bound
is 1 − δ^(1/e), so α = 0.1 needs at least 22 exits and α = 0.05 at least 45. (Bounding premature exits per
question instead lets a policy that exits rarely be wrong on a third of its exits and still pass.)

Several candidate policies are scanned, so the scan is a **Learn-then-Test fixed-sequence test**: candidates are
ordered from most to least conservative and tested in that order, each at level δ, stopping at the first whose
bound exceeds α. A candidate that never exits on the recording takes no risk and saves nothing: it is passed over
without stopping the sequence and never chosen. Every candidate passed before the stop has risk ≤ α simultaneously
with probability ≥ 1 − δ, so choosing among them (the one that spends fewest tokens on the recording) keeps the
guarantee. When no passed candidate spends fewer tokens than the unstopped paths, the result is "never exit"
(`policy None`): probing would only cost.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from certa.core.exit.policy import ExitPolicy
from certa.core.exit.replay import ReplaySummary, replay
from certa.core.exit.trace import PathTrace

CONFIDENCE_THRESHOLDS = (0.999, 0.995, 0.99, 0.98, 0.97, 0.95, 0.9, 0.85, 0.8, 0.7, 0.6, 0.5)
"""Confidence thresholds scanned, most conservative first."""
AGREEMENTS = (8, 6, 5, 4, 3, 2)
"""Agreeing probes scanned for the agreement-only policy (backends without log-probs), most conservative first."""


def _log_binomial_cdf(k: int, n: int, p: float) -> float:
    """log P(Binomial(n, p) <= k)."""
    if p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 0.0 if k >= n else -math.inf
    terms = [
        math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * math.log(p) + (n - i) * math.log1p(-p)
        for i in range(k + 1)
    ]
    peak = max(terms)
    return peak + math.log(sum(math.exp(term - peak) for term in terms))


def clopper_pearson_upper(failures: int, trials: int, delta: float) -> float:
    """One-sided Clopper–Pearson upper bound on a rate, at confidence 1 − `delta` (1.0 when `trials` is 0)."""
    if not 0 <= failures <= trials:
        raise ValueError(f"failures must be in [0, trials = {trials}], got {failures}")
    if not 0.0 < delta < 1.0:
        raise ValueError(f"delta must be in (0, 1), got {delta}")
    if failures == trials:
        return 1.0
    target = math.log(delta)
    low, high = failures / trials, 1.0
    for _ in range(100):  # bisection: the CDF falls as p grows
        middle = (low + high) / 2
        if _log_binomial_cdf(failures, trials, middle) > target:
            low = middle
        else:
            high = middle
    return high


@dataclass(frozen=True)
class Calibrated:
    """The policy a calibration chose (None: never exit) and the counts that decided, on the calibration traces."""

    policy: ExitPolicy | None
    questions: int
    exits: int
    premature: int
    wrong: int
    bound: float
    tokens: int
    plain_tokens: int
    tested: int  # candidates tested before the sequence stopped (or all of them)


def calibrate_sequence(
    candidates: Sequence[ExitPolicy], traces: Sequence[PathTrace], alpha: float, delta: float
) -> Calibrated:
    """Fixed-sequence test of `candidates` (most conservative first) at risk `alpha`, confidence 1 − `delta`."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    plain_tokens = sum(trace.path_tokens for trace in traces)
    best: tuple[ExitPolicy, ReplaySummary, float] | None = None
    tested = 0
    for candidate in candidates:
        summary = replay(candidate, traces)
        tested += 1
        if summary.exits == 0:
            continue
        bound = clopper_pearson_upper(summary.premature, summary.exits, delta)
        if bound > alpha:
            break
        if best is None or summary.tokens < best[1].tokens:
            best = (candidate, summary, bound)
    if best is None or best[1].tokens >= plain_tokens:
        return Calibrated(None, len(traces), 0, 0, 0, 0.0, plain_tokens, plain_tokens, tested)
    policy, summary, bound = best
    return Calibrated(
        policy, summary.questions, summary.exits, summary.premature, summary.wrong, bound, summary.tokens,
        plain_tokens, tested,
    )


CONFIDENCE_BASE = ExitPolicy(agreement=1, require_answer_in_path=True)
"""The confidence policy calibrated: one probe read with enough confidence, its answer written by the path."""
AGREEMENT_BASE = ExitPolicy(agreement=2, require_answer_cue=True, require_answer_in_path=True)
"""The agreement-only policy calibrated: agreeing probes after an answer cue, the answer written by the path."""


def confidence_candidates(
    base: ExitPolicy = CONFIDENCE_BASE,
    thresholds: Sequence[float] = CONFIDENCE_THRESHOLDS,
) -> tuple[ExitPolicy, ...]:
    """`base` with each confidence threshold, most conservative first."""
    ordered = sorted(thresholds, reverse=True)
    return tuple(replace(base, min_confidence=threshold) for threshold in ordered)


def agreement_candidates(
    base: ExitPolicy = AGREEMENT_BASE,
    agreements: Sequence[int] = AGREEMENTS,
) -> tuple[ExitPolicy, ...]:
    """`base` (agreement only) with each number of agreeing probes, most conservative first."""
    ordered = sorted(agreements, reverse=True)
    return tuple(replace(base, agreement=agreement, min_confidence=None) for agreement in ordered)
