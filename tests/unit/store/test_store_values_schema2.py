"""Results that schema 2 stored (the report copying the strategy result's fields) read as this release's reports, and
a record's version decides how its result is read."""

from __future__ import annotations

import pytest

from certa.core.errors import CorruptState
from certa.core.report import Interrupted, SolveReport, Usage
from certa.core.types import AnswerClass, BatchTotals, PathResult, ProbeRecord, Round, StopReason, StrategyResult
from certa.store.requests import codec, values
from certa.store.requests.port import RequestKey, RequestRecord, StoredRequest

pytestmark = pytest.mark.unit

# Written by the release before this one (schema 2), byte for byte: a voted result, a cancelled run, a failed run.
V2_FINISHED = (
    b'["SolveReport","18","voted","so 9 * 2 = 18",[40,240,28,30],[[1,64,"18",true,7,null,""]],'
    b'[["18","certain","so 9 * 2 = 18",120,14,[[1,64,"18",true,7,null,""]],1,"",[]]],[["18",2,0]],1.25,512,true,'
    b'[[[0,1],2,0.8,0.8,true,"certain",[[],[0]]]],"certaindex 0.80 >= 0.70",["BatchTotals",2,4,900,1,8,0]]'
)
V2_CANCELLED = b'["SolveReport","","cancelled","Janet has 16",[40,5,0,0],[],[],[],0.5,512,false,[],"",null]'
V2_FAILED = (
    b'["SolveReport","",null,"Janet has",[40,3,7,0],[[1,64,"18",true,7,null,""]],[],[],0.25,512,false,[],"",null]'
)

PROBE = ProbeRecord(sample_index=1, position_tokens=64, answer="18", confident=True, tokens=7)
SAMPLE = PathResult("18", StopReason.CERTAIN, "so 9 * 2 = 18", 120, 14, (PROBE,), sample_index=1)
FINISHED = SolveReport(
    StrategyResult(
        answer="18",
        stop_reason=StopReason.VOTED,
        text="so 9 * 2 = 18",
        samples=(SAMPLE,),
        answer_classes=(AnswerClass("18", 2, 0),),
        rounds=(Round((0, 1), 2, 0.8, 0.8, True, "certain", refined_from=((), (0,))),),
        stop_detail="certaindex 0.80 >= 0.70",
        batch=BatchTotals(questions=2, samples=4, generated_tokens=900, failed=1, budget_samples=8),
    ),
    Usage(prompt_tokens=40, path_tokens=240, probe_tokens=28, cached_prompt_tokens=30),
    probes=(PROBE,),
    wall_time_s=1.25,
    token_budget=512,
)


def stored(summary: bytes, version: str) -> StoredRequest:
    """A record as the store reads it back, of schema `version`, holding `summary`."""
    key = RequestKey("acme", "r1")
    record = RequestRecord(key, "f" * 64, b"", "prompt", "plain", "local", "m", 1.0, 2.0)
    fields = {**codec.request_fields(record), b"v": version.encode(), b"summary": summary}
    return codec.read_request(f"{key}:meta", key, fields, owner="")


def test_a_finished_schema_2_result_reads_as_the_strategy_result_with_the_runs_accounting() -> None:
    record = stored(V2_FINISHED, "2")
    assert record.schema == "2"
    report = values.stored_report(record)
    assert report == FINISHED
    assert report.complete and report.tokens_saved_vs_budget == 0  # a batch's budget is its own, as before


def test_interrupted_schema_2_results_read_as_interrupted_keeping_text_usage_and_probes() -> None:
    cancelled = values.stored_report(stored(V2_CANCELLED, "2"))
    assert cancelled == SolveReport(Interrupted("Janet has 16", cancelled=True), Usage(40, 5), (), 0.5, 512)
    failed = values.stored_report(stored(V2_FAILED, "2"))
    assert failed == SolveReport(Interrupted("Janet has", cancelled=False), Usage(40, 3, 7), (PROBE,), 0.25, 512)
    assert (cancelled.outcome.stop_reason, failed.outcome.stop_reason) == (StopReason.CANCELLED, None)
    assert not cancelled.complete and not failed.complete


def test_a_schema_2_result_from_before_rounds_were_stored_reads_with_their_defaults() -> None:
    older = b'["SolveReport","18","model_finished","so 18",[4,9,0,0],[],[],[],0.5,512,true]'
    report = values.stored_report(stored(older, "2"))
    assert report is not None
    assert report.outcome == StrategyResult("18", StopReason.MODEL_FINISHED, "so 18", ())


def test_this_release_reads_its_own_records_in_its_own_shape() -> None:
    record = stored(values.encode(FINISHED), codec.SCHEMA_VERSION)
    assert record.schema == "3" and values.stored_report(record) == FINISHED
    assert values.stored_report(stored(b"", codec.SCHEMA_VERSION)) is None  # no run wrote a result yet


@pytest.mark.parametrize(
    ("summary", "version"), [(V2_FINISHED, "3"), (values.encode(FINISHED), "2"), (b'["Round"]', "2")],
    ids=["schema-2-result-in-a-3-record", "schema-3-result-in-a-2-record", "not-a-report"],
)
def test_a_result_not_in_its_records_version_is_corrupt_state_naming_the_key(summary: bytes, version: str) -> None:
    with pytest.raises(CorruptState, match="acme/r1:meta"):
        values.stored_report(stored(summary, version))
