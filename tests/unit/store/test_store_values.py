"""What a request stores (spec, events, result) reads back as the same core values, and nothing else reads back."""

from __future__ import annotations

import pytest

from certa.core.allocator import AllocatorConfig, BatchBudget, Policy
from certa.core.commands import Decision, QuestionFinished
from certa.core.errors import BackendUnavailable, CorruptState
from certa.core.report import Interrupted, PathProgress, Resumed, SolveReport, TextDelta, Usage
from certa.core.spec import SolveSpec
from certa.core.stop_rules import BetaRule, EscRule
from certa.core.strategies import (
    BatchSpec,
    DynasorConfig,
    MajorityVoteSpec,
    PlainSpec,
    Refinement,
    SelfConsistencySpec,
)
from certa.core.types import (
    AnswerClass,
    BatchTotals,
    PathResult,
    ProbeRecord,
    RetireReason,
    Round,
    SamplingParams,
    StopReason,
    StrategyResult,
)
from certa.store.requests import values

pytestmark = pytest.mark.unit

PROBE = ProbeRecord(sample_index=1, position_tokens=64, answer="18", confident=True, tokens=7)
SAMPLE = PathResult("18", StopReason.CERTAIN, "so 9 * 2 = 18", 120, 14, (PROBE,), sample_index=1)


def spec(strategy: object) -> SolveSpec:
    return SolveSpec(
        request_id="r1",
        text="How many?",
        raw_prompt=False,
        strategy=strategy,  # type: ignore[arg-type]
        sampling=SamplingParams(temperature=0.7, top_p=0.9, seed=2**62),
        token_budget=512,
        deadline_s=30.5,
        backend="local",
        model="qwen",
    )


STRATEGIES = [
    PlainSpec(),
    DynasorConfig(chunk_tokens=32, certainty_threshold=2, window=4, consistency=0.75, require_settled=True),
    MajorityVoteSpec(n=5, inner=DynasorConfig()),
    SelfConsistencySpec(
        PlainSpec(),
        EscRule(window=3),
        wave_size=3,
        max_samples=9,
        refinement=Refinement("$question $attempts"),
        pool="p",
    ),
    BatchSpec(
        questions=(("q1", "one?"), ("q2", "two?")),
        inner=PlainSpec(),
        allocator=AllocatorConfig(BatchBudget(samples=8), 256, stop_rule=BetaRule(), policy=Policy.UNIFORM),
    ),
]


@pytest.mark.parametrize("strategy", STRATEGIES, ids=lambda strategy: type(strategy).__name__)
def test_every_strategy_spec_reads_back_as_it_was_accepted(strategy: object) -> None:
    accepted = spec(strategy)
    assert values.decode(values.encode(accepted), SolveSpec, "k") == accepted


def test_a_report_with_samples_rounds_and_batch_totals_reads_back_equal() -> None:
    result = StrategyResult(
        answer="18",
        stop_reason=StopReason.VOTED,
        text="…",
        samples=(SAMPLE,),
        answer_classes=(AnswerClass("18", 2, 0),),
        rounds=(Round((0, 1), 2, 0.8, 0.8, True, "certain", refined_from=((), (0,))),),
        stop_detail="certaindex 0.80 >= 0.70",
        batch=BatchTotals(questions=2, samples=4, generated_tokens=900, failed=1, budget_samples=8),
    )
    usage = Usage(prompt_tokens=40, path_tokens=240, probe_tokens=28, cached_prompt_tokens=30)
    report = SolveReport(result, usage, probes=(PROBE,), wall_time_s=1.25, token_budget=512)
    assert values.decode(values.encode(report), SolveReport, "k") == report


@pytest.mark.parametrize("cancelled", [True, False], ids=["cancelled", "failed"])
def test_an_interrupted_report_reads_back_equal(cancelled: bool) -> None:
    report = SolveReport(Interrupted("Janet has", cancelled=cancelled), Usage(path_tokens=3), (PROBE,), 0.25, 512)
    back = values.decode(values.encode(report), SolveReport, "k")
    assert back == report and back.outcome.stop_reason == (StopReason.CANCELLED if cancelled else None)


def test_events_read_back_equal_and_a_question_error_keeps_its_kind_and_message() -> None:
    events = [
        TextDelta(0, "Janet's ducks…", 3),
        PROBE,
        Decision(0, StopReason.CERTAIN, "18", "3 probes agree"),
        Resumed(2, (PathProgress(0, 120, 40),)),
    ]
    for event in events:
        assert values.decode(values.encode(event), type(event), "k") == event
    failed = QuestionFinished(
        "q1",
        StrategyResult("", StopReason.ERROR, "", (SAMPLE,)),
        RetireReason.ERROR,
        generated_tokens=134,
        prompt_tokens=20,
        error=BackendUnavailable("local", "connection refused"),
    )
    back = values.decode(values.encode(failed), QuestionFinished, "k")
    assert back.result == failed.result and back.generated_tokens == 134
    assert isinstance(back.error, BackendUnavailable) and "connection refused" in str(back.error)


def test_a_record_naming_an_unknown_type_or_the_wrong_root_is_corrupt_state_naming_the_key() -> None:
    with pytest.raises(CorruptState, match=r"acme/r1:meta.*unknown stored type 'os\.system'"):
        values.decode(b'["os.system", "rm -rf /"]', SolveSpec, "acme/r1:meta")
    with pytest.raises(CorruptState, match="expected"):
        values.decode(values.encode(PROBE), SolveSpec, "k")
    with pytest.raises(CorruptState, match="unreadable"):
        values.decode(b"\x00not json", SolveReport, "k")


def test_a_value_outside_the_stored_types_is_refused_when_written() -> None:
    with pytest.raises(TypeError, match="cannot store a object"):
        values.encode(object())


def test_records_of_an_older_or_newer_layout_read_back_with_defaults_or_without_the_extra_fields() -> None:
    encoded = values.encode(Decision(0, StopReason.CERTAIN, "18", "3 probes agree"))
    older = encoded.replace(b',"3 probes agree"]', b"]")  # written before `detail` existed
    assert values.decode(older, Decision, "k") == Decision(0, StopReason.CERTAIN, "18")
    newer = encoded.replace(b"]", b',"a field of a later version"]')
    assert values.decode(newer, Decision, "k") == Decision(0, StopReason.CERTAIN, "18", "3 probes agree")
