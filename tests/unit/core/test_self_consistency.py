"""Self-consistency in waves, driven with canned outcomes: waves, stop rules, refinement prompts."""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from certa.core.commands import Command, Emit, Handle, Start, WaitAny
from certa.core.errors import InvalidArgument
from certa.core.stop_rules import BetaRule, CertaindexRule, EscRule, FixedCount
from certa.core.strategies import (
    DynasorConfig,
    PlainSpec,
    Refinement,
    SelfConsistencySpec,
    build_strategy,
    validate_self_consistency,
)
from certa.core.types import FinishReason, GenerationRequest, Outcome, Purpose, SamplingParams, StopReason, prompt_text
from certa.prompts.refinement import load_refinement_template
from certa.testing.strategy_harness import Harness, outcome

pytestmark = pytest.mark.unit

PROMPT = ("Q: what is 6 * 3?\n",)
SEED = 100
SAMPLED = SamplingParams(temperature=0.7, seed=SEED)
TEMPLATE = "QUESTION: $question\nATTEMPTS:\n$attempts\nTry again, end with \\boxed{}."


def answers_by_sample(answers: list[str]):
    """Sample i (seed SEED + i) answers answers[i] after 10 tokens of reasoning."""

    def respond(request: GenerationRequest) -> Outcome:
        index = request.sampling.seed - SEED
        return outcome(f"reasoning of sample {index} so \\boxed{{{answers[index]}}}", FinishReason.STOP, tokens=10)

    return respond


def run(spec: SelfConsistencySpec, answers: list[str], **kwargs: object) -> tuple[object, Harness]:
    harness = Harness(answers_by_sample(answers))
    return harness.run(build_strategy(spec, PROMPT, 100, SAMPLED, **kwargs)), harness  # type: ignore[arg-type]


def test_a_wave_starts_all_its_samples_before_waiting_for_any() -> None:
    strategy = build_strategy(SelfConsistencySpec(PlainSpec(), wave_size=3), PROMPT, 100, SAMPLED)
    starts = [next(strategy)]
    for handle in range(1, 4):
        starts.append(strategy.send(Handle(handle - 1)))
    assert all(isinstance(command, Start) for command in starts[:3])
    assert [command.request.sampling.seed for command in starts[:3]] == [100, 101, 102]
    assert [command.request.sample_index for command in starts[:3]] == [0, 1, 2]
    assert starts[3] == WaitAny((Handle(0), Handle(1), Handle(2)))


def test_certaindex_stops_after_the_first_wave_when_every_sample_agrees() -> None:
    result, harness = run(SelfConsistencySpec(PlainSpec(), CertaindexRule(0.7, 5), wave_size=5), ["18"] * 40)
    assert result.stop_reason is StopReason.CERTAIN
    assert result.answer == "18"
    assert len(result.samples) == 5 and len(harness.started) == 5
    assert [(c.answer, c.count) for c in result.answer_classes] == [("18", 5)]
    assert len(result.rounds) == 1
    assert result.rounds[0].certaindex == pytest.approx(1.0) and result.rounds[0].stop
    assert result.stop_detail == "certaindex 1.000 >= 0.7"
    assert sum(sample.path_tokens for sample in result.samples) == 50


def test_disagreement_draws_waves_up_to_the_maximum_then_votes() -> None:
    answers = ["7", "8", "9", "7", "10", "11"] * 7
    spec = SelfConsistencySpec(PlainSpec(), CertaindexRule(0.7, 5), wave_size=4, max_samples=10)
    result, harness = run(spec, answers)
    assert result.stop_reason is StopReason.VOTED
    assert len(harness.started) == 10
    assert [r.drawn for r in result.rounds] == [4, 8, 10]
    assert [r.samples for r in result.rounds][-1] == (8, 9)
    assert all(not r.stop for r in result.rounds)
    assert result.answer == "7"
    assert result.stop_detail.startswith("10 samples drawn (the maximum); certaindex")


def test_fixed_count_is_plain_self_consistency_with_ties_to_the_earliest_sample() -> None:
    result, _ = run(SelfConsistencySpec(PlainSpec(), FixedCount(), wave_size=2, max_samples=4), ["9", "7", "7", "9"])
    assert result.stop_reason is StopReason.VOTED
    assert result.answer == "9"
    assert result.text.startswith("reasoning of sample 0")


def test_esc_stops_on_the_first_unanimous_window_and_answers_with_it() -> None:
    answers = ["5", "5", "5", "6", "7"] + ["8"] * 5 + ["5"] * 30
    result, harness = run(SelfConsistencySpec(PlainSpec(), EscRule(window=5), wave_size=5, max_samples=40), answers)
    assert result.stop_reason is StopReason.CERTAIN
    assert len(harness.started) == 10
    assert result.answer == "8"
    assert result.text.startswith("reasoning of sample 5")
    assert [r.statistic for r in result.rounds] == [pytest.approx(0.6), 1.0]


def test_beta_rule_with_waves_of_one_stops_at_four_agreeing_samples() -> None:
    result, _ = run(SelfConsistencySpec(PlainSpec(), BetaRule(0.95), wave_size=1, max_samples=40), ["4"] * 40)
    assert result.stop_reason is StopReason.CERTAIN
    assert [r.statistic for r in result.rounds] == pytest.approx([0.75, 0.875, 0.9375, 0.96875])


def test_dynasor_paths_as_samples() -> None:
    def respond(request: GenerationRequest) -> Outcome:
        if request.purpose is Purpose.PROBE:
            return outcome("18}", tokens=5)
        return outcome("step " * 10, tokens=10)

    spec = SelfConsistencySpec(DynasorConfig(chunk_tokens=10, certainty_threshold=2, probe_tokens=5), wave_size=5)
    result = Harness(respond).run(build_strategy(spec, PROMPT, 1000, SAMPLED))
    assert result.stop_reason is StopReason.CERTAIN and result.answer == "18"
    assert len(result.samples) == 5
    assert all(sample.stop_reason is StopReason.CERTAIN for sample in result.samples)


def refinement_run(seed: int, k: int = 2) -> tuple[object, Harness]:
    spec = SelfConsistencySpec(
        PlainSpec(), FixedCount(), wave_size=3, max_samples=6, refinement=Refinement(TEMPLATE, attempts=k)
    )
    harness = Harness(lambda request: outcome(f"attempt with seed {request.sampling.seed} \\boxed{{18}}", tokens=4))
    sampling = SamplingParams(temperature=0.7, seed=seed)
    return harness.run(build_strategy(spec, PROMPT, 100, sampling, question="What is 6 * 3?")), harness


def test_later_waves_refine_earlier_responses_of_the_question() -> None:
    result, harness = refinement_run(seed=SEED)
    first_wave = [prompt_text(request.prompt) for request in harness.started[:3]]
    refinements = [prompt_text(request.prompt) for request in harness.started[3:]]
    assert first_wave == [prompt_text(PROMPT)] * 3
    for round_refs, text in zip(result.rounds[1].refined_from, refinements, strict=True):
        assert text.startswith("QUESTION: What is 6 * 3?\nATTEMPTS:\n")
        assert len(round_refs) == 2 and set(round_refs) <= {0, 1, 2}
        for number, ref in enumerate(round_refs, start=1):
            assert f"### Previous attempt {number}\nattempt with seed {SEED + ref} \\boxed{{18}}" in text
    assert result.rounds[0].refined_from == ((), (), ())
    assert [request.sampling.seed for request in harness.started] == list(range(SEED, SEED + 6))


def send(strategy: Generator[Command, Any, Any], reply: object) -> Command:
    """The next command other than an Emit (which is acknowledged with None)."""
    command = strategy.send(reply)
    while isinstance(command, Emit):
        command = strategy.send(None)
    return command


def test_refinements_of_a_wave_start_together() -> None:
    spec = SelfConsistencySpec(PlainSpec(), FixedCount(), wave_size=2, max_samples=4, refinement=Refinement(TEMPLATE))
    strategy = build_strategy(spec, PROMPT, 100, SAMPLED, question="q")
    assert isinstance(next(strategy), Start) and isinstance(strategy.send(Handle(0)), Start)
    assert strategy.send(Handle(1)) == WaitAny((Handle(0), Handle(1)))
    assert isinstance(send(strategy, (Handle(0), outcome("a \\boxed{1}"))), WaitAny)
    third = send(strategy, (Handle(1), outcome("b \\boxed{2}")))
    fourth = strategy.send(Handle(2))
    assert isinstance(third, Start) and isinstance(fourth, Start)
    assert "Previous attempt" in prompt_text(third.request.prompt)
    assert strategy.send(Handle(3)) == WaitAny((Handle(2), Handle(3)))


def test_the_subset_is_deterministic_for_a_seed_and_varies_with_it() -> None:
    first, _ = refinement_run(seed=SEED, k=1)
    again, _ = refinement_run(seed=SEED, k=1)
    assert first.rounds == again.rounds
    choices = {refinement_run(seed=seed, k=1)[0].rounds[1].refined_from for seed in range(10)}
    assert len(choices) > 1


def test_long_responses_are_cut_to_their_last_characters() -> None:
    spec = SelfConsistencySpec(
        PlainSpec(), FixedCount(), wave_size=1, max_samples=2, refinement=Refinement(TEMPLATE, attempt_chars=12)
    )
    harness = Harness(lambda request: outcome("x" * 500 + " \\boxed{18}", tokens=4))
    harness.run(build_strategy(spec, PROMPT, 100, SAMPLED, question="q"))
    assert "### Previous attempt 1\n[…] x \\boxed{18}\n" in prompt_text(harness.started[1].prompt)


def test_refinement_needs_the_question() -> None:
    spec = SelfConsistencySpec(PlainSpec(), refinement=Refinement(TEMPLATE))
    with pytest.raises(InvalidArgument) as raised:
        build_strategy(spec, PROMPT, 100, SAMPLED)
    assert raised.value.field == "question"


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        (SelfConsistencySpec(PlainSpec(), max_samples=0), "sc.max_samples"),
        (SelfConsistencySpec(PlainSpec(), max_samples=65), "sc.max_samples"),
        (SelfConsistencySpec(PlainSpec(), wave_size=0), "sc.wave_size"),
        (SelfConsistencySpec(PlainSpec(), wave_size=41), "sc.wave_size"),
        (SelfConsistencySpec(PlainSpec(), CertaindexRule(threshold=1.2)), "sc.stop_rule.threshold"),
        (SelfConsistencySpec(PlainSpec(), refinement=Refinement("$question only")), "sc.refinement.template"),
        (SelfConsistencySpec(PlainSpec(), refinement=Refinement(TEMPLATE, attempts=0)), "sc.refinement.attempts"),
        (
            SelfConsistencySpec(PlainSpec(), refinement=Refinement(TEMPLATE, attempt_chars=0)),
            "sc.refinement.attempt_chars",
        ),
    ],
)
def test_invalid_specs_name_their_field(spec: SelfConsistencySpec, field: str) -> None:
    with pytest.raises(InvalidArgument) as raised:
        validate_self_consistency(spec, "sc", max_samples=64)
    assert raised.value.field == field


def test_the_shipped_template_loads_and_a_broken_one_is_refused(tmp_path: Path) -> None:
    template = load_refinement_template()
    assert "$question" in template and "$attempts" in template and "\\boxed{}" in template
    broken = tmp_path / "refine.txt"
    broken.write_text("Solve $question again, see ${attempt}.")
    with pytest.raises(InvalidArgument) as raised:
        load_refinement_template(broken, "strategy.self_consistency.refinement")
    assert raised.value.field == "strategy.self_consistency.refinement.template"


def test_in_a_pool_each_wave_is_asked_for_with_the_query_s_uncertainty() -> None:
    answers = ["7", "8", "7", "7", "9", "7"] * 2
    spec = SelfConsistencySpec(PlainSpec(), CertaindexRule(0.99, 2), wave_size=2, max_samples=6, pool="chat")
    harness = Harness(answers_by_sample(answers), pool=lambda ask: ask.samples)
    result = harness.run(build_strategy(spec, PROMPT, 100, SAMPLED))
    assert len(result.samples) == 6 and result.stop_reason is StopReason.VOTED
    first, second, third = harness.asked
    assert (first.samples, first.drawn, first.uncertainty, first.mandatory) == (2, 0, 1.0, True)
    assert (second.drawn, second.mandatory) == (2, False)
    assert second.uncertainty == pytest.approx(1 - result.rounds[0].certaindex) and second.uncertainty == 1.0
    assert third.drawn == 4 and third.uncertainty == pytest.approx(1 - result.rounds[1].certaindex)
    assert third.uncertainty < 1.0  # the votes of the first four samples lean to 7


def test_a_wave_the_pool_refuses_ends_the_query_with_what_it_has() -> None:
    spec = SelfConsistencySpec(PlainSpec(), CertaindexRule(0.99, 2), wave_size=2, max_samples=10, pool="chat")
    harness = Harness(answers_by_sample(["7", "8", "7", "7"] * 3), pool=lambda ask: ask.samples if ask.drawn < 4 else 0)
    result = harness.run(build_strategy(spec, PROMPT, 100, SAMPLED))
    assert (result.stop_reason, result.answer, len(result.samples)) == (StopReason.BUDGET, "7", 4)
    assert len(harness.started) == 4 and len(result.rounds) == 2
    assert result.stop_detail == "the budget pool granted no further wave (4 samples drawn)"


def test_without_a_pool_nothing_is_asked() -> None:
    result, harness = run(SelfConsistencySpec(PlainSpec(), FixedCount(), wave_size=2, max_samples=4), ["9"] * 4)
    assert len(result.samples) == 4 and harness.asked == []
