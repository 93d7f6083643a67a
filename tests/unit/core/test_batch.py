"""The batch strategy: the allocator drives samples of many questions, results come out as soon as they are final."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from certa.core.allocator import AllocatorConfig, BatchBudget, Policy
from certa.core.commands import QuestionFinished
from certa.core.errors import BackendError, CertaError, InvalidArgument
from certa.core.stop_rules import CertaindexRule, FixedCount
from certa.core.strategies import DynasorConfig, PlainSpec, Refinement, path_factory, sample_max_tokens
from certa.core.strategies.batch import BatchQuestion, batch_strategy
from certa.core.types import (
    FinishReason,
    GenerationRequest,
    Outcome,
    Purpose,
    RetireReason,
    SamplingParams,
    StopReason,
    prompt_text,
)
from certa.testing.strategy_harness import Harness, outcome

pytestmark = pytest.mark.unit

SAMPLED = SamplingParams(temperature=0.7, seed=50)
QUESTIONS = [BatchQuestion(name, (f"Q-{name}: solve it\n",), f"Question {name}?") for name in ("easy", "hard")]
HARD_ANSWERS = ["3", "4", "5", "4", "6", "4", "7", "4", "4", "8"]


def respond(request: GenerationRequest) -> Outcome:
    """`easy` always answers 18; `hard` answers by sample number (seed - 50); 12 tokens per sample."""
    number = request.sampling.seed - 50
    answer = "18" if "easy" in prompt_text(request.prompt) else HARD_ANSWERS[number % len(HARD_ANSWERS)]
    return outcome(f"work \\boxed{{{answer}}}", FinishReason.STOP, tokens=12)


def plain_config(**overrides: object) -> AllocatorConfig:
    values: dict[str, object] = {
        "budget": BatchBudget(samples=14),
        "sample_max_tokens": 100,
        "per_question_cap": 12,
        "warmup": 3,
        "stop_rule": CertaindexRule(0.7, 3),
    }
    values.update(overrides)
    return AllocatorConfig(**values)  # type: ignore[arg-type]


def finished_events(harness: Harness) -> list[QuestionFinished]:
    return [event for event in harness.emitted if isinstance(event, QuestionFinished)]


def test_a_certain_question_finishes_early_and_the_rest_of_the_budget_goes_to_the_other() -> None:
    harness = Harness(respond)
    strategy = batch_strategy(QUESTIONS, path_factory(PlainSpec(), 100), SAMPLED, plain_config(), max_in_flight=2)
    result = harness.run(strategy)
    easy, hard = result.questions
    assert (easy.question_id, easy.reason, easy.result.stop_reason) == (
        "easy",
        RetireReason.CERTAIN,
        StopReason.CERTAIN,
    )
    assert easy.result.answer == "18" and len(easy.result.samples) == 3
    assert hard.reason is RetireReason.BUDGET and hard.result.stop_reason is StopReason.BUDGET
    assert len(hard.result.samples) == 11 and hard.result.answer == "4"
    assert result.samples == 14 == len(harness.started)
    assert result.generated_tokens == 14 * 12 == easy.generated_tokens + hard.generated_tokens
    # easy was reported while hard still had samples to draw
    events = finished_events(harness)
    assert [event.question_id for event in events] == ["easy", "hard"]
    assert harness.emitted.index(events[0]) < len(harness.emitted) - 5
    # sample indices are unique across the batch; seeds follow each question's sample number
    assert len({request.sample_index for request in harness.started}) == 14
    easy_seeds = [r.sampling.seed for r in harness.started if "easy" in prompt_text(r.prompt)]
    assert easy_seeds == [50, 51, 52]
    assert [r.drawn for r in hard.result.rounds] == list(range(1, 12))
    assert hard.result.rounds[-1].certaindex == pytest.approx(hard.result.rounds[-1].statistic)


def test_samples_of_a_retired_question_still_running_are_cancelled_and_their_tokens_count() -> None:
    harness = Harness(respond, cancelled_tokens=5)
    config = plain_config(policy=Policy.UNIFORM, warmup=1, budget=BatchBudget(samples=12))
    result = harness.run(batch_strategy(QUESTIONS, path_factory(PlainSpec(), 100), SAMPLED, config, max_in_flight=4))
    easy = result.questions[0]
    assert easy.reason is RetireReason.CERTAIN
    assert [prompt_text(r.prompt).startswith("Q-easy") for r in harness.cancelled] == [True]
    assert len(easy.result.samples) == 3
    assert easy.generated_tokens == 3 * 12 + 5
    assert result.generated_tokens == sum(q.generated_tokens for q in result.questions)


def test_budget_in_tokens_is_never_exceeded_by_dynasor_samples_with_probes() -> None:
    def probed(request: GenerationRequest) -> Outcome:
        """Hesitant probes (no early exit); every call generates its maximum."""
        if request.purpose is Purpose.PROBE:
            return outcome("wait}", tokens=request.max_tokens)
        return outcome("step " * 10, tokens=request.max_tokens)

    dynasor = DynasorConfig(chunk_tokens=10, certainty_threshold=2, probe_tokens=5)
    ceiling = sample_max_tokens(dynasor, 40)
    assert ceiling == 40 + 4 * 5
    config = plain_config(
        budget=BatchBudget(tokens=ceiling * 8), sample_max_tokens=ceiling, warmup=2, stop_rule=FixedCount()
    )
    harness = Harness(probed)
    result = harness.run(batch_strategy(QUESTIONS, path_factory(dynasor, 40), SAMPLED, config, max_in_flight=3))
    # A sample generates 40 path + 3 x 5 probe tokens of the 60 reserved; the released 5s buy an eighth sample.
    assert result.samples == 8
    assert result.generated_tokens == 8 * 55 == sum(request.max_tokens for request in harness.started)
    assert all(q.reason is RetireReason.BUDGET for q in result.questions)


def test_samples_after_the_warmup_refine_earlier_ones_of_the_same_question() -> None:
    template = "REFINE $question\n$attempts"
    harness = Harness(respond)
    config = plain_config(stop_rule=FixedCount(), budget=BatchBudget(samples=8), warmup=2, per_question_cap=4)
    strategy = batch_strategy(
        QUESTIONS, path_factory(PlainSpec(), 100), SAMPLED, config, max_in_flight=2, refinement=Refinement(template)
    )
    result = harness.run(strategy)
    texts = [prompt_text(request.prompt) for request in harness.started]
    assert sum(text.startswith("REFINE") for text in texts) == 4
    for question in result.questions:
        rounds, samples = question.result.rounds, question.result.samples
        assert [len(r.refined_from[0]) for r in rounds] == [0, 0, 2, 2]
        for position, round_ in enumerate(rounds):  # the pool: earlier samples of the same question
            assert set(round_.refined_from[0]) <= {sample.sample_index for sample in samples[:position]}
    assert any(text.startswith("REFINE Question hard?") for text in texts)


def test_invalid_batches_are_refused_before_anything_runs() -> None:
    with pytest.raises(InvalidArgument) as raised:
        batch_strategy(QUESTIONS, path_factory(PlainSpec(), 100), SAMPLED, plain_config(), max_in_flight=0)
    assert raised.value.field == "batch.max_in_flight"
    with pytest.raises(InvalidArgument) as raised:
        batch_strategy(
            QUESTIONS, path_factory(PlainSpec(), 100), SAMPLED, plain_config(), max_in_flight=2, max_questions=1
        )
    assert raised.value.field == "batch.questions"

    with pytest.raises(InvalidArgument) as raised:
        batch_strategy(
            [BatchQuestion("raw", ("<prompt>",))],
            path_factory(PlainSpec(), 100),
            SAMPLED,
            plain_config(budget=BatchBudget(samples=3)),
            max_in_flight=2,
            refinement=Refinement("$question $attempts"),
        )
    assert raised.value.field == "batch.questions"


def failing_hard_sample(number: int) -> Callable[[GenerationRequest], Outcome | CertaError]:
    """`respond`, except that sample `number` of `hard` fails."""

    def respond_or_fail(request: GenerationRequest) -> Outcome | CertaError:
        if "hard" in prompt_text(request.prompt) and request.sampling.seed - 50 == number:
            return BackendError("triton", "stream reset by peer")
        return respond(request)

    return respond_or_fail


def test_a_failing_sample_fails_only_its_question_and_the_batch_goes_on() -> None:
    harness = Harness(failing_hard_sample(4), failed_tokens=5, cancelled_tokens=2)
    strategy = batch_strategy(QUESTIONS, path_factory(PlainSpec(), 100), SAMPLED, plain_config(), max_in_flight=2)
    result = harness.run(strategy)
    easy, hard = result.questions
    assert easy.reason is RetireReason.CERTAIN and easy.result.answer == "18" and easy.error is None
    assert hard.reason is RetireReason.ERROR
    assert isinstance(hard.error, BackendError) and "stream reset" in str(hard.error)
    # what it had, but no answer: samples 0-3 came back, the vote over them is not reported as an answer
    assert (hard.result.answer, hard.result.text, hard.result.stop_reason) == ("", "", StopReason.ERROR)
    assert [sample.answer for sample in hard.result.samples] == HARD_ANSWERS[:4]
    assert hard.result.stop_detail == "sample 4 failed: backend 'triton': stream reset by peer"
    hard_started = [r for r in harness.started if "hard" in prompt_text(r.prompt)]
    assert len(hard_started) == 4 + 1 + len(harness.cancelled)  # nothing started for it after the failure
    # the failed and cancelled samples' tokens count toward the question and the batch
    assert hard.generated_tokens == 4 * 12 + 5 + 2 * len(harness.cancelled)
    assert result.generated_tokens == easy.generated_tokens + hard.generated_tokens
    assert [event.question_id for event in finished_events(harness)] == ["easy", "hard"]


def test_the_batch_fails_with_the_error_when_every_question_failed() -> None:
    harness = Harness(lambda request: BackendError("triton", "unreachable"))
    strategy = batch_strategy(QUESTIONS, path_factory(PlainSpec(), 100), SAMPLED, plain_config(), max_in_flight=4)
    with pytest.raises(BackendError, match="unreachable"):
        harness.run(strategy)
    assert sorted(event.question_id for event in finished_events(harness)) == ["easy", "hard"]
    assert all(event.reason is RetireReason.ERROR for event in finished_events(harness))


def test_a_failing_call_of_a_dynasor_sample_cancels_that_sample_s_other_calls() -> None:
    def fail_hard_probes(request: GenerationRequest) -> Outcome | CertaError:
        if "hard" not in prompt_text(request.prompt):
            return respond(request)
        if request.purpose is Purpose.PROBE:
            return BackendError("triton", "probe refused")
        return outcome("step ", FinishReason.LENGTH, tokens=4)  # a path that goes on, so it gets probed

    config = DynasorConfig(chunk_tokens=4, certainty_threshold=2, probe_tokens=3)
    harness = Harness(fail_hard_probes)
    strategy = batch_strategy(
        QUESTIONS,
        path_factory(config, 40),
        SAMPLED,
        plain_config(sample_max_tokens=sample_max_tokens(config, 40)),
        max_in_flight=2,
    )
    easy, hard = harness.run(strategy).questions
    assert easy.reason is RetireReason.CERTAIN and hard.reason is RetireReason.ERROR
    assert "probe refused" in str(hard.error) and hard.result.samples == ()
    # the first failed probe took down the chunk its sample had started beside it, and the question's other samples
    assert sum(1 for entry in harness.log if entry.startswith("failed")) == 1
    cancelled = [r for r in harness.cancelled if "hard" in prompt_text(r.prompt)]
    assert cancelled and all(r.purpose is Purpose.PATH for r in cancelled)
    failed_sample = next(r.sample_index for r in harness.started if r.purpose is Purpose.PROBE)
    assert failed_sample in {r.sample_index for r in cancelled}
