"""Strategies driven with gen.send() and scripted outcomes: answers and tokens spent."""

from __future__ import annotations

import pytest

from certa.core.commands import Decision, Handle, Start, Wait
from certa.core.strategies import DynasorConfig, MajorityVoteSpec, PlainSpec, build_strategy
from certa.core.strategies.dynasor import PROBE_SUFFIX, dynasor_cot
from certa.core.types import FinishReason, GenerationRequest, Outcome, Purpose, SamplingParams, Segment, StopReason
from certa.testing.strategy_harness import Harness, outcome

pytestmark = pytest.mark.unit

GREEDY = SamplingParams()
PROMPT = ("Q: what is 6 * 3?\n",)


def chunks_then_probes(probe_replies: list[str], chunk_finish_at: int | None = None):
    """Each path chunk is 10 tokens of filler; the k-th probe answers probe_replies[k]."""
    state = {"probes": 0, "chunks": 0}

    def respond(request: GenerationRequest) -> Outcome:
        if request.purpose is Purpose.PROBE:
            reply = probe_replies[min(state["probes"], len(probe_replies) - 1)]
            state["probes"] += 1
            return outcome(reply, tokens=5)
        state["chunks"] += 1
        if chunk_finish_at is not None and state["chunks"] >= chunk_finish_at:
            return outcome("so the answer is \\boxed{18}.", FinishReason.STOP, tokens=7)
        return outcome("step " * 10, tokens=min(10, request.max_tokens))

    return respond


def config(threshold: int = 2, chunk: int = 10) -> DynasorConfig:
    return DynasorConfig(chunk_tokens=chunk, certainty_threshold=threshold, probe_tokens=5)


def test_probe_and_next_chunk_start_together_before_the_probe_is_read() -> None:
    strategy = dynasor_cot(PROMPT, 100, GREEDY, config())
    first = next(strategy)
    assert isinstance(first, Start) and first.request.purpose is Purpose.PATH
    assert first.request.max_tokens == 10
    wait = strategy.send(Handle(0))
    assert wait == Wait(Handle(0))
    probe = strategy.send(Outcome(Segment("a b c", (1, 2, 3)), 10, FinishReason.LENGTH))
    assert isinstance(probe, Start) and probe.request.purpose is Purpose.PROBE
    assert probe.request.prompt == (*PROMPT, Segment("a b c", (1, 2, 3)), PROBE_SUFFIX)
    assert probe.request.sampling.temperature == 0.6 and probe.request.sampling.top_p == 0.95
    chunk = strategy.send(Handle(1))
    assert isinstance(chunk, Start) and chunk.request.purpose is Purpose.PATH
    assert chunk.request.prompt == (*PROMPT, Segment("a b c", (1, 2, 3)))
    assert strategy.send(Handle(2)) == Wait(Handle(1))


def test_exits_after_threshold_agreeing_confident_probes_and_cancels_the_chunk_in_flight() -> None:
    harness = Harness(chunks_then_probes(["17}", "18}", "18}"]), cancelled_tokens=4)
    result = harness.run(dynasor_cot(PROMPT, 1000, GREEDY, config(threshold=2)))
    assert result.stop_reason is StopReason.CERTAIN
    assert result.answer == "18"
    assert [p.answer for p in result.probes] == ["17", "18", "18"]
    assert [p.position_tokens for p in result.probes] == [10, 20, 30]
    # Three chunks kept (30 tokens) + 4 tokens of the cancelled fourth chunk; three probes of 5 tokens.
    assert result.path_tokens == 34
    assert result.probe_tokens == 15
    assert len(harness.cancelled) == 1 and harness.cancelled[0].purpose is Purpose.PATH
    assert result.text.endswith("\\boxed{18}\n\\]")
    assert result.text.startswith("step ")
    assert Decision(0, StopReason.CERTAIN, "18", "2 agreeing confident probes") in harness.emitted


def test_no_exit_while_a_probe_hesitates_with_the_whole_word_wait() -> None:
    replies = ["18}", "Wait, 18}", "18}", "18}"]
    harness = Harness(chunks_then_probes(replies))
    result = harness.run(dynasor_cot(PROMPT, 1000, GREEDY, config(threshold=2)))
    assert [p.confident for p in result.probes] == [True, False, True, True]
    assert result.stop_reason is StopReason.CERTAIN
    assert result.probes[-1].position_tokens == 40  # not before the hesitant probe was outvoted


def test_hesitation_words_inside_other_words_do_not_count() -> None:
    harness = Harness(chunks_then_probes(["18} as I know", "18}, nothing butter-smooth"]))
    result = harness.run(dynasor_cot(PROMPT, 1000, GREEDY, config(threshold=2)))
    assert [p.confident for p in result.probes] == [True, True]
    assert result.stop_reason is StopReason.CERTAIN
    assert result.path_tokens == 20


def test_empty_probe_answers_never_count_as_agreement() -> None:
    harness = Harness(chunks_then_probes(["}", "}", "no closing brace", "18}", "18}"]))
    result = harness.run(dynasor_cot(PROMPT, 1000, GREEDY, config(threshold=2)))
    assert [p.answer for p in result.probes] == ["", "", "", "18", "18"]
    assert result.stop_reason is StopReason.CERTAIN
    assert result.probes[-1].position_tokens == 50


def test_model_finishing_on_its_own_returns_the_answer_in_its_text() -> None:
    harness = Harness(chunks_then_probes(["wait}"], chunk_finish_at=3))
    result = harness.run(dynasor_cot(PROMPT, 1000, GREEDY, config(threshold=2)))
    assert result.stop_reason is StopReason.MODEL_FINISHED
    assert result.answer == "18"
    assert result.path_tokens == 27
    assert result.probe_tokens == 10  # probes after chunks 1 and 2 only
    assert harness.cancelled == []


def test_budget_exhaustion_falls_back_to_the_last_non_empty_probe() -> None:
    harness = Harness(chunks_then_probes(["hmm, 12}", "hmm}", "hmm, 14}"]))
    result = harness.run(dynasor_cot(PROMPT, 35, GREEDY, config(threshold=2)))
    assert result.stop_reason is StopReason.BUDGET
    assert [request.max_tokens for request in harness.started if request.purpose is Purpose.PATH] == [10, 10, 10, 5]
    assert result.path_tokens == 35
    assert result.answer == "hmm, 14"


def test_disabled_early_exit_probes_but_never_stops() -> None:
    harness = Harness(chunks_then_probes(["18}"], chunk_finish_at=4))
    result = harness.run(dynasor_cot(PROMPT, 1000, GREEDY, DynasorConfig(chunk_tokens=10, certainty_threshold=2,
                                                                          early_exit=False)))
    assert result.stop_reason is StopReason.MODEL_FINISHED
    assert len(result.probes) == 3
    assert result.path_tokens == 37


def test_window_rule_exits_when_most_recent_probes_agree() -> None:
    harness = Harness(chunks_then_probes(["18}", "17}", "18}", "18}"]))
    window = DynasorConfig(chunk_tokens=10, certainty_threshold=3, window=4, consistency=0.75)
    result = harness.run(dynasor_cot(PROMPT, 1000, GREEDY, window))
    assert result.stop_reason is StopReason.CERTAIN
    assert result.probes[-1].position_tokens == 40


def test_early_exit_closes_an_open_think_block() -> None:
    harness = Harness(chunks_then_probes(["18}"]))
    result = harness.run(dynasor_cot(("<think>\n",), 1000, GREEDY, config(threshold=2)))
    assert "\n</think>\n\nOh, I have got the answer" in result.text


def test_plain_cot_spends_one_call_and_reads_the_boxed_answer() -> None:
    harness = Harness(lambda request: outcome("thus \\boxed{\\frac{1}{2}}", FinishReason.STOP, tokens=42))
    result = harness.run(build_strategy(PlainSpec(), PROMPT, 500, GREEDY))
    assert result.answer == "\\frac{1}{2}"
    assert result.stop_reason is StopReason.MODEL_FINISHED
    assert result.samples[0].path_tokens == 42
    assert [request.max_tokens for request in harness.started] == [500]


def test_plain_cot_cut_by_the_budget() -> None:
    harness = Harness(lambda request: outcome("still thinking", FinishReason.LENGTH, tokens=request.max_tokens))
    result = harness.run(build_strategy(PlainSpec(), PROMPT, 64, GREEDY))
    assert result.stop_reason is StopReason.BUDGET
    assert result.answer == ""
    assert result.samples[0].path_tokens == 64


def test_majority_vote_groups_non_numeric_equivalent_answers() -> None:
    answers = iter(["\\frac{1}{2}", "0.5", "1/3", "\\dfrac{1}{2}", "1/3"])

    def respond(request: GenerationRequest) -> Outcome:
        return outcome(f"so \\boxed{{{next(answers)}}}", FinishReason.STOP, tokens=11)

    harness = Harness(respond)
    sampling = SamplingParams(temperature=0.7, seed=5)
    result = harness.run(build_strategy(MajorityVoteSpec(n=5, inner=PlainSpec()), PROMPT, 100, sampling))
    assert result.stop_reason is StopReason.VOTED
    assert result.answer == "\\frac{1}{2}"
    assert [(c.answer, c.count) for c in result.answer_classes] == [("\\frac{1}{2}", 3), ("1/3", 2)]
    assert sum(sample.path_tokens for sample in result.samples) == 55
    assert [request.sampling.seed for request in harness.started] == [5, 6, 7, 8, 9]


def test_majority_vote_tie_goes_to_the_earliest_sample() -> None:
    answers = iter(["7", "9", "9", "7"])
    harness = Harness(lambda request: outcome(f"\\boxed{{{next(answers)}}}", FinishReason.STOP, tokens=3))
    result = harness.run(build_strategy(MajorityVoteSpec(n=4, inner=PlainSpec()), PROMPT, 100,
                                        SamplingParams(temperature=1.0)))
    assert result.answer == "7"


def test_majority_vote_of_dynasor_paths_runs_them_side_by_side() -> None:
    harness = Harness(chunks_then_probes(["18}"]))
    spec = MajorityVoteSpec(n=3, inner=config(threshold=2))
    result = harness.run(build_strategy(spec, PROMPT, 1000, SamplingParams(temperature=0.6)))
    assert result.answer == "18"
    assert len(result.samples) == 3
    assert all(sample.stop_reason is StopReason.CERTAIN for sample in result.samples)
    # Every sample starts its first chunk before any sample waits: the scheduler interleaves them.
    assert harness.log[:3] == ["start path", "start path", "start path"]
    assert {probe.sample_index for probe in result.probes} == {0, 1, 2}


def path_that_probes_its_latest_number(chunks: list[str], answers: list[str]):
    chunk_iter, answer_iter = iter(chunks), iter(answers)

    def respond(request: GenerationRequest) -> Outcome:
        if request.purpose is Purpose.PROBE:
            return outcome(next(answer_iter) + "}", tokens=3)
        return outcome(next(chunk_iter), tokens=10)

    return respond


EGGS = ("Janet has 16 eggs, eats 3, bakes with 4 and sells the rest at 2 dollars each.",)
EGG_CHUNKS = ["16 - 3 = 13 and 13 - 4 = 9.", " At 2 dollars each, 9 * 2 = 18", " dollars a day.", " That is all.", "x"]
EGG_PROBES = ["9", "9", "18", "18"]


def test_settled_guard_keeps_a_path_going_while_it_still_computes() -> None:
    guarded = DynasorConfig(chunk_tokens=10, certainty_threshold=2, probe_tokens=5, require_settled=True)
    result = Harness(path_that_probes_its_latest_number(EGG_CHUNKS, EGG_PROBES)).run(
        dynasor_cot(EGGS, 1000, GREEDY, guarded)
    )
    # Probes 1 and 2 agree on 9, but chunk 2 computed a new number (18): no exit. Chunk 4 computed nothing new,
    # so probes 3 and 4 agreeing on 18 end the path.
    assert result.stop_reason is StopReason.CERTAIN
    assert result.answer == "18"
    assert [p.position_tokens for p in result.probes] == [10, 20, 30, 40]


def test_without_the_guard_the_same_path_exits_on_the_intermediate_number() -> None:
    reference = DynasorConfig(chunk_tokens=10, certainty_threshold=2, probe_tokens=5)
    result = Harness(path_that_probes_its_latest_number(EGG_CHUNKS, EGG_PROBES)).run(
        dynasor_cot(EGGS, 1000, GREEDY, reference)
    )
    assert result.stop_reason is StopReason.CERTAIN
    assert result.answer == "9"
    assert [p.position_tokens for p in result.probes] == [10, 20]
