"""Preset auto through the gRPC API: bad risk or profile is INVALID_ARGUMENT; the result says what decided."""

from __future__ import annotations

import grpc
import pytest

from certa.v1 import reasoning_pb2 as pb
from certa.v1 import reasoning_pb2_grpc as pb_grpc


def auto(**fields: object) -> pb.Strategy:
    return pb.Strategy(dynasor_cot=pb.DynasorCot(preset=pb.DynasorCot.PRESET_AUTO, **fields))  # type: ignore[arg-type]


@pytest.mark.parametrize(("strategy", "field", "says"), [
    (auto(risk=0.0), "strategy.dynasor_cot.risk", "must be in (0, 0.5], got 0"),
    (auto(risk=0.75), "strategy.dynasor_cot.risk", "must be in (0, 0.5], got 0.75"),
    (auto(profile="gpt-17"), "strategy.dynasor_cot.profile", "unknown exit profile 'gpt-17'"),
])
async def test_bad_risk_or_profile_is_invalid_argument(
    stub: pb_grpc.ReasoningServiceStub, strategy: pb.Strategy, field: str, says: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.Solve(pb.SolveRequest(question="q", strategy=strategy))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in raised.value.details() and says in raised.value.details()


async def test_without_log_probs_the_result_says_agreement_only_decided(stub: pb_grpc.ReasoningServiceStub) -> None:
    # the in-process scripted backend returns no log-probs: the conservative default then never exits
    response = await stub.Solve(pb.SolveRequest(question="[[confident-after:0]] Janet?", strategy=auto(risk=0.1),
                                                token_budget=1000))
    result = response.result
    assert response.status == pb.SOLVE_STATUS_SUCCEEDED and result.answer == "18"
    assert result.stop_reason == pb.STOP_REASON_MODEL_FINISHED
    assert "exit profile conservative-default" in result.stop_detail
    assert "agreement only (the backend returned no log-probs)" in result.stop_detail
    assert len(result.probes) == 1 and not result.probes[0].HasField("confidence") and result.probes[0].trigger


async def test_a_request_with_only_a_question_succeeds_with_preset_auto(stub: pb_grpc.ReasoningServiceStub) -> None:
    # the README's first example: no strategy, no sampling, no budget
    response = await stub.Solve(pb.SolveRequest(question="[[confident-after:0]] Janet?"))
    assert response.status == pb.SOLVE_STATUS_SUCCEEDED and response.result.answer == "18"
    assert "exit profile conservative-default" in response.result.stop_detail
