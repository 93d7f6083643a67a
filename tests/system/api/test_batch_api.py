"""SolveBatch through the API: per-question results streamed as they become final, the budget never exceeded,
bad batches refused by field (real gRPC server, scripted backend, real Redis)."""

from __future__ import annotations

import grpc
import pytest

from certa.v1 import reasoning_pb2 as pb
from certa.v1 import reasoning_pb2_grpc as pb_grpc

pytestmark = pytest.mark.integration

SAMPLED = pb.SamplingParams(temperature=0.8, seed=3)


def batch(*questions: tuple[str, str], **fields: object) -> pb.SolveBatchRequest:
    fields.setdefault("plain", pb.PlainCot())
    fields.setdefault("sampling", SAMPLED)
    fields.setdefault("token_budget", 400)
    return pb.SolveBatchRequest(
        questions=[pb.BatchQuestion(id=qid, question=text) for qid, text in questions],
        **fields,  # type: ignore[arg-type]
    )


QUESTIONS = (("settled", "Q"), ("split", "[[vote:18,7,9,11]] Q"), ("also-settled", "Another Q"))


async def test_questions_stream_as_they_finish_and_the_budget_holds(stub: pb_grpc.ReasoningServiceStub) -> None:
    request = batch(
        *QUESTIONS,
        budget=pb.BatchBudget(samples=14),
        warmup=2,
        per_question_cap=8,
        request_id="batch-1",
        stop_rule=pb.StopRule(certaindex=pb.CertaindexRule(threshold=0.9, min_samples=2)),
    )
    events = [event async for event in stub.SolveBatch(request)]
    kinds = [event.WhichOneof("event") for event in events]
    assert kinds[0] == "started" and kinds[-1] == "result"
    finished = {event.question.id: event.question for event in events if event.HasField("question")}
    assert set(finished) == {"settled", "split", "also-settled"}
    summary = events[-1].result.batch
    assert summary.questions == 3 and summary.samples_spent <= 14
    assert (summary.budget.samples, summary.budget.tokens) == (14, 0)  # spent against given
    assert sum(len(q.result.samples) for q in finished.values()) == summary.samples_spent
    # Settled questions are retired by the stop rule after their warm-up; the split one gets the rest.
    assert finished["settled"].retire_reason == "certain" and len(finished["settled"].result.samples) == 2
    assert len(finished["split"].result.samples) > 2
    assert finished["settled"].result.answer == "18"
    stored = await stub.GetSolve(pb.GetSolveRequest(request_id="batch-1"))
    assert stored.status == pb.SOLVE_STATUS_SUCCEEDED and stored.strategy == "batch"
    assert stored.result.batch == summary


async def test_a_token_budget_is_never_exceeded(stub: pb_grpc.ReasoningServiceStub) -> None:
    request = batch(*QUESTIONS, budget=pb.BatchBudget(tokens=3000), warmup=1, per_question_cap=10)
    events = [event async for event in stub.SolveBatch(request)]
    summary = events[-1].result.batch
    assert 0 < summary.tokens_spent <= 3000
    assert summary.samples_spent >= 3  # every question got its warm-up


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (batch(budget=pb.BatchBudget(samples=5)), "batch.questions"),
        (batch(("a", "Q"), ("a", "Q"), budget=pb.BatchBudget(samples=10)), "batch.questions"),
        (batch(*QUESTIONS, budget=pb.BatchBudget(samples=5), warmup=2), "batch.budget.samples"),
        (batch(*QUESTIONS), "batch.budget"),
        (batch(*QUESTIONS, budget=pb.BatchBudget(samples=30), per_question_cap=0), "batch.per_question_cap"),
        (batch(*QUESTIONS, budget=pb.BatchBudget(samples=30), exploration=-1), "batch.exploration"),
        (
            batch(
                *QUESTIONS,
                budget=pb.BatchBudget(samples=30),
                stop_rule=pb.StopRule(certaindex=pb.CertaindexRule(threshold=1.5)),
            ),
            "stop_rule.certaindex.threshold",
        ),
        (batch(*QUESTIONS, budget=pb.BatchBudget(samples=30), sampling=pb.SamplingParams()), "sampling.temperature"),
        (batch(*[(f"q{i}", "Q") for i in range(1001)], budget=pb.BatchBudget(samples=5000)), "questions"),
        (batch(("a", ""), budget=pb.BatchBudget(samples=5)), "questions[0].question"),
    ],
)
async def test_bad_batches_name_the_field(
    stub: pb_grpc.ReasoningServiceStub, request_: pb.SolveBatchRequest, field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        async for _ in stub.SolveBatch(request_):
            pass
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert raised.value.details().startswith(field), raised.value.details()


async def test_a_failing_question_reports_its_error_and_the_batch_goes_on(stub: pb_grpc.ReasoningServiceStub) -> None:
    request = batch(
        *QUESTIONS,
        ("broken", "[[fail-after:20]] Q"),
        budget=pb.BatchBudget(samples=16),
        warmup=2,
        per_question_cap=4,
        request_id="batch-broken",
    )
    events = [event async for event in stub.SolveBatch(request)]
    finished = {event.question.id: event.question for event in events if event.HasField("question")}
    broken = finished.pop("broken")
    assert broken.retire_reason == "error" and broken.error.code == "UNAVAILABLE"
    assert "scripted failure after 20 tokens" in broken.error.message
    assert (broken.result.answer, broken.result.stop_reason) == ("", pb.STOP_REASON_ERROR)
    assert all(not q.HasField("error") and q.result.answer for q in finished.values())
    assert finished["settled"].result.answer == "18"
    summary = events[-1].result.batch
    assert (summary.questions, summary.failed_questions) == (4, 1)
    stored = await stub.GetSolve(pb.GetSolveRequest(request_id="batch-broken"))
    assert stored.status == pb.SOLVE_STATUS_SUCCEEDED


async def test_a_batch_whose_every_question_failed_fails_with_their_error(stub: pb_grpc.ReasoningServiceStub) -> None:
    request = batch(
        ("a", "[[fail-after:5]] Q"),
        ("b", "[[fail-after:9]] Q"),
        budget=pb.BatchBudget(samples=4),
        warmup=2,
        request_id="batch-all-broken",
    )
    received: list[pb.SolveEvent] = []
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        async for event in stub.SolveBatch(request):
            received.append(event)
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    errors = {event.question.id: event.question.error.code for event in received if event.HasField("question")}
    assert errors == {"a": "UNAVAILABLE", "b": "UNAVAILABLE"}
    stored = await stub.GetSolve(pb.GetSolveRequest(request_id="batch-all-broken"))
    assert stored.status == pb.SOLVE_STATUS_FAILED
