"""Dynasor-CoT preset auto (calibrated exits) against a scripted reasoning-style model, beside the fixed rule.

The scripted model writes one word per token. It computes two intermediate results, states its answer ("The answer
is 18.") early, then keeps re-verifying it for hundreds of tokens, as R1-style models do, before `\\boxed{18}`.
Its probes repeat the latest number the path wrote; once the answer is stated they say it with confident
log-probs (geometric mean 0.99), before that with 0.6.
"""

from __future__ import annotations

import math
import re

import pytest

from certa.core.commands import Decision
from certa.core.exit.calibration import Calibrated
from certa.core.exit.policy import ExitPolicy
from certa.core.exit.profile import CONSERVATIVE_DEFAULT, ExitProfile, RiskLevel
from certa.core.strategies import DynasorConfig, PlainSpec, build_strategy
from certa.core.strategies.calibrated import CalibratedExit
from certa.core.types import (
    FinishReason,
    GenerationRequest,
    Outcome,
    ProbeRecord,
    Purpose,
    SamplingParams,
    Segment,
    StopReason,
    StrategyResult,
    TokenLogProbs,
)
from certa.testing.strategy_harness import Harness

pytestmark = pytest.mark.unit

QUESTION = "Janet has 16 eggs, eats 3 and bakes with 4; she sells the rest at $2 each. How much does she make?"
STEP = "First she uses 3 + 4 = 7 eggs, so 16 - 7 eggs are left, which is 9 eggs. "
STATEMENT = "She sells them at $2 each, 9 * 2 = 18 dollars.\nThe answer is 18. "
VERIFY = "Wait, let me verify this again carefully: 16 - 3 - 4 = 9 and 9 * 2 = 18, yes that matches. " * 12


def script(steps: int) -> tuple[list[str], int]:
    """The path's words when it works `steps` times before stating its answer, and where the answer is stated."""
    work = STEP * steps + STATEMENT
    return (work + VERIFY + "\\boxed{18}").split(" "), len(work.split(" ")) - 1


PATH, ANSWER_AT = script(3)


def _path_words(request: GenerationRequest) -> int:
    return sum(len(piece.text.split(" ")) - 1 for piece in request.prompt if isinstance(piece, Segment))


def reasoning_model(with_log_probs: bool = True, path: list[str] = PATH):
    PATH = path  # noqa: N806 - the script this model follows

    def respond(request: GenerationRequest) -> Outcome:
        done = _path_words(request)
        if request.purpose is Purpose.PROBE:
            written = " ".join(PATH[:done])
            stated = "The answer is 18" in written
            numbers = re.findall(r"\d+", written)
            answer = "18" if stated else (numbers[-1] if numbers else "")
            text = f"{answer}}} \\]"
            log_probs = None
            if with_log_probs and request.log_probs:  # one token per digit, then "} \]"
                each = math.log(0.99 if stated else 0.6)
                log_probs = TokenLogProbs((*(each,) * len(answer), -0.1), (*range(1, len(answer) + 1), len(text)))
            return Outcome(Segment(text), len(answer) + 1, FinishReason.STOP, log_probs=log_probs)
        words = PATH[done : done + request.max_tokens]
        finished = done + len(words) >= len(PATH)
        text = "".join(word + " " for word in words) if not finished else " ".join(words)
        return Outcome(Segment(text), len(words), FinishReason.STOP if finished else FinishReason.LENGTH)

    return respond


def _run(spec, respond) -> tuple[StrategyResult, Harness]:
    harness = Harness(respond)
    result = harness.run(build_strategy(spec, (QUESTION,), 1024, SamplingParams()))
    return result, harness


def _auto(profile: ExitProfile = CONSERVATIVE_DEFAULT, risk: float = 0.1, record: bool = False) -> DynasorConfig:
    return DynasorConfig.auto(CalibratedExit(profile, risk, record))


def test_plain_runs_the_whole_path() -> None:
    result, _ = _run(PlainSpec(), reasoning_model())
    assert result.answer == "18" and result.samples[0].path_tokens == len(PATH)
    assert len(PATH) > ANSWER_AT + 200  # hundreds of tokens of re-verification


def test_default_exits_within_two_probes_of_the_answer_with_the_right_answer() -> None:
    result, harness = _run(_auto(), reasoning_model())
    probes = [event for event in harness.emitted if isinstance(event, ProbeRecord)]
    assert result.stop_reason is StopReason.CERTAIN and result.answer == "18"
    assert len(probes) == 2, "no probe before the answer cue, exit on the second probe after it"
    assert all(probe.position_tokens >= ANSWER_AT for probe in probes)
    assert probes[0].position_tokens - ANSWER_AT < 32  # the first probe is in the chunk that stated the answer
    assert probes[-1].confidence == pytest.approx(0.99)
    path = result.samples[0]
    assert path.path_tokens == probes[-1].position_tokens and path.path_tokens + path.probe_tokens < len(PATH) / 2
    assert "confidence from log-probs" in result.stop_detail and "conservative-default" in result.stop_detail


def _spent(result: StrategyResult) -> int:
    return result.samples[0].path_tokens + result.samples[0].probe_tokens


def test_fixed_rule_beside_it() -> None:
    auto, _ = _run(_auto(), reasoning_model())
    for preset, spent in (("high", 200), ("mid", 267), ("crazy", 139)):
        fixed, _ = _run(DynasorConfig.preset(preset), reasoning_model())
        # right here, but probing every chunk from the start and cancelling a chunk in flight costs more
        assert (fixed.answer, fixed.stop_reason, _spent(fixed)) == ("18", StopReason.CERTAIN, spent)
        assert _spent(auto) < spent
    # a longer computation: crazy's probes repeat the intermediate 7 twice and it stops with it; auto does not
    path, answer_at = script(7)
    crazy, _ = _run(DynasorConfig.preset("crazy"), reasoning_model(path=path))
    assert (crazy.answer, crazy.stop_reason) == ("7", StopReason.CERTAIN)
    auto, _ = _run(_auto(), reasoning_model(path=path))
    assert (auto.answer, auto.stop_reason) == ("18", StopReason.CERTAIN)
    assert auto.probes[0].position_tokens >= answer_at and len(auto.probes) == 2


def test_default_without_log_probs_never_exits_and_says_so() -> None:
    result, harness = _run(_auto(), reasoning_model(with_log_probs=False))
    assert result.stop_reason is StopReason.MODEL_FINISHED and result.answer == "18"
    assert result.samples[0].path_tokens == len(PATH)
    assert "agreement only (the backend returned no log-probs)" in result.stop_detail
    assert len([e for e in harness.emitted if isinstance(e, ProbeRecord)]) == 1  # then nothing can exit: no probes
    paths = [r for r in harness.started if r.purpose is Purpose.PATH]
    assert paths[-1].max_tokens == 1024 - _path_words(paths[-1])  # and the rest of the path is one call


def test_no_probe_before_a_candidate_answer_and_none_when_the_level_never_exits() -> None:
    never = ExitProfile("never", "m", "t", 0.1, 32, 20,
                        (RiskLevel(0.05, Calibrated(None, 1, 0, 0, 0, 1.0, 1, 1, 1),
                                   Calibrated(None, 1, 0, 0, 0, 1.0, 1, 1, 1)),), 0.05)
    result, harness = _run(_auto(never, 0.05), reasoning_model())
    assert not [r for r in harness.started if r.purpose is Purpose.PROBE]
    assert len(harness.started) == 1  # the whole path in one call, as plain chain of thought
    assert result.samples[0].path_tokens == len(PATH) and result.samples[0].probe_tokens == 0
    assert "never exit (no probe sent)" in result.stop_detail
    result, _ = _run(_auto(never, 0.01), reasoning_model())
    assert "no level calibrated at risk <= 0.01" in result.stop_detail


def test_a_calibrated_confidence_level_exits_on_one_confident_probe() -> None:
    policy = ExitPolicy(agreement=1, min_confidence=0.95, require_answer_in_path=True)
    profile = ExitProfile("p", "m", "t", 0.1, 32, 20,
                          (RiskLevel(0.1, Calibrated(policy, 1, 1, 0, 0, 0.1, 1, 2, 1),
                                     Calibrated(None, 1, 0, 0, 0, 1.0, 1, 1, 1)),), 0.1)
    result, harness = _run(_auto(profile), reasoning_model())
    assert result.answer == "18" and result.stop_reason is StopReason.CERTAIN
    probes = [event for event in harness.emitted if isinstance(event, ProbeRecord)]
    assert probes[-1].position_tokens >= ANSWER_AT and probes[-1].position_tokens - ANSWER_AT < 32
    decisions = [event for event in harness.emitted if isinstance(event, Decision)]
    assert "calibrated alpha 0.1" in decisions[-1].detail and "confidence >= 0.95" in decisions[-1].detail


def test_recording_mode_probes_every_chunk_and_never_exits() -> None:
    result, harness = _run(_auto(record=True), reasoning_model())
    path = result.samples[0]
    assert result.stop_reason is StopReason.MODEL_FINISHED and path.path_tokens == len(PATH)
    assert [t.position_tokens for t in path.traces] == list(range(32, len(PATH), 32))
    first = path.traces[0]
    assert (first.candidate, first.answer_cue) == (False, False)  # "= 7 eggs," states no result: not at a line end
    stated = next(t for t in path.traces if t.answer_cue)
    assert stated.answer == "18" and stated.answer_in_path and stated.confidence == pytest.approx(0.99)
    assert stated.position_tokens - ANSWER_AT < 32
    assert all(r.log_probs for r in harness.started if r.purpose is Purpose.PROBE)
