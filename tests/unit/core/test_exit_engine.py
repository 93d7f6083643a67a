"""The exit engine's pure parts: traces, policies, exact replay, calibration, profiles."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from certa.core.errors import InvalidArgument
from certa.core.exit.calibration import (
    calibrate_sequence,
    clopper_pearson_upper,
    confidence_candidates,
)
from certa.core.exit.cues import answer_cue_written, answer_in_path, candidate_written, chunk_trigger
from certa.core.exit.policy import ExitPolicy, policy_from_dict, policy_to_dict
from certa.core.exit.profile import (
    CONSERVATIVE_DEFAULT,
    ProfileBook,
    RecordingMismatch,
    calibrate_profile,
    profile_from_dict,
    profile_to_dict,
    validate_risk,
)
from certa.core.exit.replay import replay
from certa.core.exit.trace import PathTrace, ProbeTrace, answer_log_probs, trace_from_dict, trace_to_dict
from certa.core.types import TokenLogProbs

pytestmark = pytest.mark.unit

RECORDING = Path(__file__).parents[2] / "fixtures" / "exit" / "small_recording.jsonl"


def load() -> list[PathTrace]:
    return [trace_from_dict(json.loads(line)) for line in RECORDING.read_text().splitlines()]


def test_recording_round_trips() -> None:
    for line in RECORDING.read_text().splitlines():
        data = json.loads(line)
        assert trace_to_dict(trace_from_dict(data)) == data


def test_confidence_is_the_geometric_mean_probability_of_the_answer_tokens() -> None:
    probe = load()[0].probes[1]
    assert probe.confidence == pytest.approx(math.exp(-0.015))
    assert load()[2].probes[0].confidence is None


def test_answer_tokens_are_those_starting_inside_the_answer() -> None:
    # probe text "18} and" as tokens "1", "8", "}", " and": the answer "18" ends at character 2
    log_probs = TokenLogProbs((-0.1, -0.2, -0.3, -0.4), (1, 2, 3, 7))
    assert answer_log_probs(log_probs, 2) == (-0.1, -0.2)
    assert answer_log_probs(None, 2) is None


def test_replay_confidence_policy_exact_figures() -> None:
    summary = replay(ExitPolicy(agreement=1, min_confidence=0.9), load())
    assert (summary.questions, summary.correct, summary.exits, summary.premature, summary.wrong) == (4, 3, 2, 0, 0)
    assert (summary.path_tokens, summary.probe_tokens) == (384, 80)
    assert summary.exit_positions == (64, 96)
    assert (summary.plain_tokens, summary.plain_correct) == (704, 3)
    assert summary.saving == pytest.approx(1 - 464 / 704)


def test_replay_counts_premature_and_wrong_exits() -> None:
    summary = replay(ExitPolicy(agreement=1, min_confidence=0.8), load())
    assert (summary.correct, summary.exits, summary.premature, summary.wrong) == (2, 2, 1, 1)
    assert (summary.path_tokens, summary.probe_tokens) == (320, 60)
    q2 = summary.rows[1]
    assert (q2.answer, q2.exit_position_tokens, q2.premature, q2.wrong) == ("8", 32, True, True)


def test_replay_agreement_only_policy_and_plain() -> None:
    summary = replay(ExitPolicy(agreement=2, require_answer_cue=True), load())
    assert (summary.exits, summary.path_tokens, summary.probe_tokens) == (1, 480, 70)
    plain = replay(None, load())
    assert (plain.exits, plain.tokens, plain.correct) == (0, 704, 3)


def test_hesitant_probes_never_exit() -> None:
    q4 = load()[3]  # confident but hesitant probes at 32 and 64, an unhesitating one at 96
    assert replay(ExitPolicy(agreement=1, min_confidence=0.5), [q4]).exit_positions == (96,)


def test_calibration_picks_the_cheapest_candidate_before_the_first_failure() -> None:
    # four questions bound little: with no premature exit among e exits the bound is 1 - 0.1^(1/e)
    calibrated = calibrate_sequence(confidence_candidates(), load(), alpha=0.9, delta=0.1)
    assert calibrated.policy is not None and calibrated.policy.min_confidence == 0.98
    assert (calibrated.exits, calibrated.premature, calibrated.tokens, calibrated.plain_tokens) == (2, 0, 464, 704)
    # 0.999 never exits (passed over), 0.995 (1 exit) ... 0.9 (2 exits) pass, 0.85 exits q2 prematurely: 1 of 2 fails
    assert calibrated.tested == 8
    assert calibrated.bound == pytest.approx(1 - 0.1 ** 0.5)


def test_the_risk_is_counted_among_exits_so_a_rare_wrong_exit_is_not_diluted_by_the_questions() -> None:
    # 40 paths; a confident probe on two of them, one of those premature: 1 of 40 questions, but 1 of 2 exits
    def path(index: int, confidence: float, answer: str) -> PathTrace:
        probe = ProbeTrace(10, "answer", answer, (math.log(confidence),), False, 5, True, True, True)
        return PathTrace(str(index), "2", "2", 100, "model_finished", (probe,), "m", "t")

    traces = [path(0, 0.99, "2"), path(1, 0.99, "1"), *(path(i, 0.1, "1") for i in range(2, 40))]
    assert clopper_pearson_upper(1, 40, 0.1) <= 0.1  # per question, this policy would pass at 0.1
    calibrated = calibrate_sequence(confidence_candidates(thresholds=(0.9,)), traces, alpha=0.1, delta=0.1)
    assert calibrated.policy is None and calibrated.tested == 1


def test_calibration_refuses_to_exit_when_nothing_can_be_certified() -> None:
    calibrated = calibrate_sequence(confidence_candidates(), load(), alpha=0.05, delta=0.1)
    assert calibrated.policy is None and calibrated.tokens == calibrated.plain_tokens == 704


def test_clopper_pearson_known_values() -> None:
    assert clopper_pearson_upper(0, 25, 0.1) == pytest.approx(1 - 0.1 ** (1 / 25))
    assert clopper_pearson_upper(3, 3, 0.1) == 1.0
    with pytest.raises(ValueError, match="failures"):
        clopper_pearson_upper(4, 3, 0.1)


@given(st.integers(1, 200).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n))), st.floats(0.01, 0.5))
@settings(max_examples=60, deadline=None)
def test_clopper_pearson_bound_is_the_binomial_tail_root(trial: tuple[int, int], delta: float) -> None:
    n, k = trial
    bound = clopper_pearson_upper(k, n, delta)
    assert k / n <= bound <= 1.0
    if k < n:
        tail = sum(math.comb(n, i) * bound**i * (1 - bound) ** (n - i) for i in range(k + 1))
        assert tail == pytest.approx(delta, abs=1e-6)


def _synthetic(rng: random.Random, questions: int) -> list[PathTrace]:
    """One probe per path at token 10, confidence u ~ U(0, 1), premature with probability 0.4 (1 - u).

    A threshold λ exits on u >= λ, so the share of its exits that are premature is E[0.4 (1 - u) | u >= λ] =
    0.2 (1 - λ): 0.05 at λ = 0.75, above below it.
    """
    traces = []
    for index in range(questions):
        u = rng.random()
        answer = "1" if rng.random() < 0.4 * (1 - u) else "2"
        probe = ProbeTrace(10, "answer", answer, (math.log(max(u, 1e-12)),), False, 5, True, True, True)
        traces.append(PathTrace(str(index), "2", "2", 100, "model_finished", (probe,), "m", "t"))
    return traces


def test_calibrated_risk_holds_on_synthetic_traces_with_a_known_premature_rate() -> None:
    alpha, delta = 0.05, 0.1
    thresholds = (0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6, 0.5, 0.4)
    rng = random.Random(7)
    violations = chose = runs = 0
    for _ in range(40):
        chosen = calibrate_sequence(confidence_candidates(thresholds=thresholds), _synthetic(rng, 1500), alpha, delta)
        runs += 1
        if chosen.policy is not None:
            chose += 1
            true_risk = 0.2 * (1 - chosen.policy.min_confidence)
            violations += true_risk > alpha + 1e-12
    assert violations / runs <= delta
    assert chose >= runs // 2  # the bound is not met by never exiting


def test_profile_round_trips_and_picks_the_level_at_or_below_the_risk() -> None:
    traces = load()
    profile = calibrate_profile(
        traces, name="p", model="scripted-model", template="tmpl-1", alphas=(0.5, 0.1), chunk_tokens=32,
        probe_tokens=10,
    )
    assert profile_from_dict(json.loads(json.dumps(profile_to_dict(profile)))) == profile
    assert profile.level(0.3).alpha == 0.1
    assert profile.level(0.5).alpha == 0.5
    assert profile.level(0.05) is None
    assert profile.level(0.5).confidence.policy is None  # two exits without a premature one bound 0.68 > 0.5


def test_calibration_refuses_a_recording_of_another_model_or_template() -> None:
    with pytest.raises(RecordingMismatch, match="recorded with model 'scripted-model', the profile claims 'other'"):
        calibrate_profile(load(), name="p", model="other", template="tmpl-1", alphas=(0.1,), chunk_tokens=32,
                          probe_tokens=10)
    with pytest.raises(RecordingMismatch, match="prompt template 'tmpl-1', the profile claims 'tmpl-2'"):
        calibrate_profile(load(), name="p", model="scripted-model", template="tmpl-2", alphas=(0.1,),
                          chunk_tokens=32, probe_tokens=10)


def test_risk_outside_the_range_names_field_and_range() -> None:
    for bad in (0.0, 0.51, -1.0):
        with pytest.raises(InvalidArgument, match=r"must be in \(0, 0.5\]"):
            validate_risk(bad, "strategy.dynasor_cot.risk")
    assert validate_risk(0.5, "risk") == 0.5


def test_profile_book_resolves_names_and_rejects_unknown_ones() -> None:
    book = ProfileBook({})
    assert book.resolve("", "f") is CONSERVATIVE_DEFAULT
    with pytest.raises(InvalidArgument, match="unknown exit profile 'nope'"):
        book.resolve("nope", "strategy.dynasor_cot.profile")


def test_conservative_default_cannot_exit_on_agreement_alone() -> None:
    level = CONSERVATIVE_DEFAULT.level(0.05)
    assert level is not None and level.agreement.policy is None
    # two agreeing probes on an intermediate number, no log-probs: no exit
    probe = ProbeTrace(64, "result", "8", None, False, 10, True, True, True)
    trace = PathTrace("q", "40", "40", 200, "model_finished", (probe, probe), "m", "t")
    assert replay(level.confidence.policy, [trace]).exits == 0
    assert replay(level.agreement.policy, [trace]).exits == 0


def test_policy_round_trips() -> None:
    policy = ExitPolicy(agreement=2, min_confidence=0.9, min_position_tokens=64, cues_only=True, every_tokens=32)
    assert policy_from_dict(policy_to_dict(policy)) == policy
    assert policy_from_dict(None) is None


def test_cues() -> None:
    assert chunk_trigger("3 apples. Wait, that is wrong", 10) == "wait"
    assert chunk_trigger("so far nothing", 0) == "chunk"
    assert chunk_trigger("The answer is 18.", 0) == "answer"
    assert chunk_trigger("Alternatively, we", 0) == "alternatively"
    assert chunk_trigger("Let me verify this", 0) == "verify"
    assert chunk_trigger("3 * 6 = 18\n", 0) == "result"
    assert not candidate_written("First we compute the number of eggs")
    assert candidate_written("3 * 6 = 18\n") and not answer_cue_written("3 * 6 = 18\n")
    assert answer_cue_written("Therefore she pays $18.")
    assert answer_in_path("18", "she has 18 eggs") and not answer_in_path("19", "she has 18 eggs")
    assert answer_in_path("1,800", "costs 1800") and not answer_in_path("", "x")


def test_no_probe_once_the_path_wrote_its_boxed_answer_except_for_the_reference_presets() -> None:
    ending = ProbeTrace(416, "boxed", "20", (-0.02,), False, 12, True, True, True, final_written=True)
    trace = PathTrace("q", "18", "20", 419, "model_finished", (ending,), "m", "t")
    calibrated = replay(ExitPolicy(agreement=1, min_confidence=0.5), [trace])
    assert (calibrated.exits, calibrated.probe_tokens, calibrated.tokens) == (0, 0, 419)
    fixed = replay(ExitPolicy(agreement=1, require_candidate=False), [trace])
    assert (fixed.exits, fixed.probe_tokens) == (1, 12)


def _timed_probe(position: int, answer: str, path_s: float, probe_s: float) -> ProbeTrace:
    return ProbeTrace(position, "chunk", answer, (-0.01,), False, 10, True, True, True, path_s=path_s, probe_s=probe_s)


def test_replay_wall_time_is_the_path_up_to_the_exit_plus_the_probes_sent() -> None:
    probes = (_timed_probe(32, "7", 1.0, 0.25), _timed_probe(64, "7", 2.0, 0.5))
    trace = PathTrace("q", "7", "7", 100, "stop", probes, "m", "t", path_s=4.0)
    assert trace_from_dict(trace_to_dict(trace)) == trace
    exits = replay(ExitPolicy(agreement=2), [trace])
    assert exits.exit_positions == (64,) and exits.wall_s == pytest.approx(2.0 + 0.25 + 0.5)
    plain = replay(None, [trace])
    assert plain.wall_s == pytest.approx(4.0) and plain.plain_wall_s == pytest.approx(4.0)
    never = replay(ExitPolicy(agreement=3), [trace])
    assert never.exits == 0 and never.wall_s == pytest.approx(4.0 + 0.75)
    assert replay(None, load()).wall_s is None  # a recording without timings has no wall time
