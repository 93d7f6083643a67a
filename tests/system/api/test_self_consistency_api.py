"""Self-consistency through the API: waves, stop rules, refinement prompts and the per-round report, against the
real gRPC server (scripted backend, real Redis)."""

from __future__ import annotations

import grpc
import pytest

from certa.core.types import prompt_text
from certa.testing.scripted_backend import ScriptedBackend
from certa.v1 import reasoning_pb2 as pb
from certa.v1 import reasoning_pb2_grpc as pb_grpc

pytestmark = pytest.mark.integration

SAMPLED = pb.SamplingParams(temperature=0.8, seed=1)


def self_consistency(**fields: object) -> pb.Strategy:
    fields.setdefault("plain", pb.PlainCot())
    return pb.Strategy(self_consistency=pb.SelfConsistency(**fields))  # type: ignore[arg-type]


async def test_a_unanimous_question_stops_after_the_first_check(stub: pb_grpc.ReasoningServiceStub) -> None:
    response = await stub.Solve(
        pb.SolveRequest(question="Q", strategy=self_consistency(max_samples=20), sampling=SAMPLED)
    )
    result = response.result
    assert result.answer == "18" and result.stop_reason == pb.STOP_REASON_CERTAIN
    assert [round_.drawn for round_ in result.rounds] == [5]  # one wave of 5, then Certaindex 1.0 >= 0.7
    assert result.rounds[0].certaindex == pytest.approx(1.0) and result.rounds[0].stop
    assert "certaindex" in result.stop_detail
    assert [(c.answer, c.count) for c in result.answer_classes] == [("18", 5)]


async def test_a_split_question_draws_up_to_its_cap_with_a_fixed_rule(stub: pb_grpc.ReasoningServiceStub) -> None:
    strategy = self_consistency(max_samples=6, wave_size=3, stop_rule=pb.StopRule(fixed=pb.FixedCount()))
    response = await stub.Solve(
        pb.SolveRequest(question="[[vote:18,\\frac{36}{2},7]] Q", strategy=strategy, sampling=SAMPLED)
    )
    result = response.result
    assert len(result.samples) == 6 and [r.drawn for r in result.rounds] == [3, 6]
    # Seeds 1..6 answer \frac{36}{2}, 7, 18, \frac{36}{2}, 7, 18: one class of four (the first sample's form names
    # it) against two.
    assert result.answer == "\\frac{36}{2}" and result.stop_reason == pb.STOP_REASON_VOTED
    assert [c.count for c in result.answer_classes] == [4, 2]


async def test_refinement_prompts_quote_the_question_and_earlier_attempts(
    stub: pb_grpc.ReasoningServiceStub, backend: ScriptedBackend
) -> None:
    strategy = self_consistency(
        max_samples=4, wave_size=2, stop_rule=pb.StopRule(fixed=pb.FixedCount()), refinement=pb.Refinement(attempts=2)
    )
    response = await stub.Solve(pb.SolveRequest(question="How many eggs?", strategy=strategy, sampling=SAMPLED))
    assert len(response.result.samples) == 4
    prompts = [prompt_text(request.prompt) for request in backend.requests]
    refined = [prompt for prompt in prompts if "How many eggs?" in prompt and "Janet's ducks" in prompt]
    assert len(refined) == 2  # the second wave shows the first wave's responses


@pytest.mark.parametrize(
    ("strategy", "sampling", "field"),
    [
        (
            self_consistency(stop_rule=pb.StopRule(certaindex=pb.CertaindexRule(threshold=1.5))),
            SAMPLED,
            "strategy.self_consistency.stop_rule.certaindex.threshold",
        ),
        (
            self_consistency(stop_rule=pb.StopRule(beta=pb.BetaRule(threshold=-0.1))),
            SAMPLED,
            "strategy.self_consistency.stop_rule.beta.threshold",
        ),
        (self_consistency(wave_size=10, max_samples=5), SAMPLED, "strategy.self_consistency.wave_size"),
        (self_consistency(max_samples=1000), SAMPLED, "strategy.self_consistency.max_samples"),
        (self_consistency(), pb.SamplingParams(), "sampling.temperature"),
        (pb.Strategy(self_consistency=pb.SelfConsistency()), SAMPLED, "strategy.self_consistency.inner"),
    ],
)
async def test_bad_self_consistency_parameters_name_the_field(
    stub: pb_grpc.ReasoningServiceStub, strategy: pb.Strategy, sampling: pb.SamplingParams, field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.Solve(pb.SolveRequest(question="Q", strategy=strategy, sampling=sampling))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert raised.value.details().startswith(field)


async def test_refinement_needs_a_question(stub: pb_grpc.ReasoningServiceStub) -> None:
    strategy = self_consistency(refinement=pb.Refinement())
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.Solve(pb.SolveRequest(raw_prompt="Q", strategy=strategy, sampling=SAMPLED))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "refinement" in raised.value.details()
