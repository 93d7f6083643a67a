"""Map core values (reports, events, request views) to protobuf messages."""

from __future__ import annotations

from typing import Any

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from certa.api.status_codes import status_code
from certa.core.commands import Decision, QuestionFinished
from certa.core.report import Interrupted, Resumed, RuntimeEvent, SolveReport, TextDelta
from certa.core.types import PathResult, ProbeRecord, Round, StopReason, StrategyResult
from certa.service.views import Finished, FollowedEvent, RequestView
from certa.store.requests.port import Status
from certa.v1 import reasoning_pb2 as pb

_STATUS = {
    Status.RUNNING: pb.SOLVE_STATUS_RUNNING,
    Status.SUCCEEDED: pb.SOLVE_STATUS_SUCCEEDED,
    Status.FAILED: pb.SOLVE_STATUS_FAILED,
    Status.CANCELLED: pb.SOLVE_STATUS_CANCELLED,
}

_STOP_REASONS = {
    None: pb.STOP_REASON_UNSPECIFIED,
    StopReason.CERTAIN: pb.STOP_REASON_CERTAIN,
    StopReason.MODEL_FINISHED: pb.STOP_REASON_MODEL_FINISHED,
    StopReason.BUDGET: pb.STOP_REASON_BUDGET,
    StopReason.CANCELLED: pb.STOP_REASON_CANCELLED,
    StopReason.VOTED: pb.STOP_REASON_VOTED,
    StopReason.ERROR: pb.STOP_REASON_ERROR,
}


def stop_reason_to_proto(reason: StopReason | None) -> pb.StopReason:
    return _STOP_REASONS[reason]


def probe_to_proto(probe: ProbeRecord) -> pb.Probe:
    return pb.Probe(
        sample_index=probe.sample_index,
        position_tokens=probe.position_tokens,
        answer=probe.answer,
        confident=probe.confident,
        tokens=probe.tokens,
        confidence=probe.confidence,
        trigger=probe.trigger,
    )


def _duration(seconds: float) -> Duration:
    duration = Duration()
    duration.FromNanoseconds(int(seconds * 1e9))
    return duration


def _sample(sample: PathResult) -> pb.Sample:
    return pb.Sample(
        index=sample.sample_index,
        answer=sample.answer,
        stop_reason=stop_reason_to_proto(sample.stop_reason),
        path_tokens=sample.path_tokens,
        probe_tokens=sample.probe_tokens,
    )


def _round(round_: Round) -> pb.Round:
    return pb.Round(
        samples=round_.samples,
        drawn=round_.drawn,
        certaindex=round_.certaindex,
        statistic=round_.statistic,
        stop=round_.stop,
        reason=round_.reason,
    )


def _outcome(outcome: StrategyResult | Interrupted) -> dict[str, Any]:
    """The fields of a `SolveResult` the strategy decides: its answer, why it stopped, and the evidence (an
    interrupted run has only its text, and a stop reason when it was cancelled)."""
    if isinstance(outcome, Interrupted):
        return {"stop_reason": stop_reason_to_proto(outcome.stop_reason), "text": outcome.text}
    batch = outcome.batch
    return {
        "answer": outcome.answer,
        "stop_reason": stop_reason_to_proto(outcome.stop_reason),
        "text": outcome.text,
        "samples": [_sample(sample) for sample in outcome.samples],
        "answer_classes": [pb.AnswerClass(answer=c.answer, count=c.count) for c in outcome.answer_classes],
        "rounds": [_round(round_) for round_ in outcome.rounds],
        "stop_detail": outcome.stop_detail,
        "batch": pb.BatchSummary(
            questions=batch.questions,
            failed_questions=batch.failed,
            samples_spent=batch.samples,
            tokens_spent=batch.generated_tokens,
            budget=pb.BatchBudget(samples=batch.budget_samples, tokens=batch.budget_tokens),
        )
        if batch is not None
        else None,
    }


def report_to_proto(report: SolveReport) -> pb.SolveResult:
    usage = report.usage
    return pb.SolveResult(
        **_outcome(report.outcome),
        usage=pb.TokenUsage(
            prompt_tokens=usage.prompt_tokens,
            path_tokens=usage.path_tokens,
            probe_tokens=usage.probe_tokens,
            cached_prompt_tokens=usage.cached_prompt_tokens,
        ),
        probes=[probe_to_proto(probe) for probe in report.probes],
        wall_time=_duration(report.wall_time_s),
        tokens_saved_vs_budget=report.tokens_saved_vs_budget,
    )


def question_to_proto(result: StrategyResult, prompt_tokens: int) -> pb.SolveResult:
    """One question of a batch: its vote, samples, rounds and the tokens its samples spent."""
    return pb.SolveResult(
        **_outcome(result),
        usage=pb.TokenUsage(
            prompt_tokens=prompt_tokens,
            path_tokens=sum(sample.path_tokens for sample in result.samples),
            probe_tokens=sum(sample.probe_tokens for sample in result.samples),
        ),
        probes=[probe_to_proto(probe) for probe in result.probes],
    )


def event_to_proto(request_id: str, event: RuntimeEvent) -> pb.SolveEvent:
    if isinstance(event, TextDelta):
        return pb.SolveEvent(
            request_id=request_id,
            text=pb.TextDelta(sample_index=event.sample_index, text=event.text, path_tokens=event.path_tokens),
        )
    if isinstance(event, ProbeRecord):
        return pb.SolveEvent(request_id=request_id, probe=probe_to_proto(event))
    if isinstance(event, Decision):
        return pb.SolveEvent(
            request_id=request_id,
            decision=pb.Decision(
                sample_index=event.sample_index,
                stop_reason=stop_reason_to_proto(event.stop_reason),
                answer=event.answer,
                detail=event.detail,
            ),
        )
    if isinstance(event, QuestionFinished):
        return pb.SolveEvent(
            request_id=request_id,
            question=pb.QuestionResult(
                id=event.question_id,
                result=question_to_proto(event.result, event.prompt_tokens),
                retire_reason=str(event.reason),
                error=pb.QuestionError(code=status_code(event.error).name, message=str(event.error))
                if event.error is not None
                else None,
            ),
        )
    if isinstance(event, Resumed):
        return pb.SolveEvent(
            request_id=request_id,
            resumed=pb.Resumed(
                attempt=event.attempt,
                paths=[
                    pb.PathProgress(sample_index=p.sample_index, text_chars=p.text_chars, path_tokens=p.path_tokens)
                    for p in event.paths
                ],
            ),
        )
    raise TypeError(f"unknown runtime event {event!r}")


def followed_to_proto(request_id: str, event: FollowedEvent) -> pb.SolveEvent:
    """An event of a followed request; `Finished` becomes the `result` event."""
    if isinstance(event, Finished):
        result = report_to_proto(event.result) if event.result is not None else None
        return pb.SolveEvent(request_id=request_id, result=result)
    return event_to_proto(request_id, event)


def view_to_response(view: RequestView) -> pb.SolveResponse:
    created = Timestamp()
    created.FromNanoseconds(int(view.created_at * 1e9))
    return pb.SolveResponse(
        request_id=view.key.request_id,
        status=_STATUS[view.status],
        result=report_to_proto(view.result) if view.result is not None else None,
        error=view.error,
        created_at=created,
        strategy=view.strategy,
        attempt=view.attempt,
    )
