"""The whole controller path against a real Triton server hosting scripted TensorRT-LLM-shaped models."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import grpc
import pytest

from certa.testing.scripted_model import DEFAULT_SCRIPT
from certa.v1 import reasoning_pb2 as pb
from certa.v1 import reasoning_pb2_grpc as pb_grpc
from tests.system.api.test_api import partial_result

pytestmark = pytest.mark.integration

SCRIPT = DEFAULT_SCRIPT.replace("ANSWER", "18")


def dynasor(**knobs: object) -> pb.Strategy:
    knobs.setdefault("chunk_tokens", 32)
    knobs.setdefault("certainty_threshold", 2)
    knobs.setdefault("probe_tokens", 10)
    return pb.Strategy(dynasor_cot=pb.DynasorCot(**knobs))  # type: ignore[arg-type]


@pytest.mark.parametrize("backend", ["trtllm", "trtllm-text"])
async def test_early_exit_streams_events_in_order(triton_stub: pb_grpc.ReasoningServiceStub, backend: str) -> None:
    request = pb.SolveRequest(question="[[confident-after:120]] Janet?", strategy=dynasor(), backend=backend)
    events = [event async for event in triton_stub.SolveStream(request)]
    kinds = [event.WhichOneof("event") for event in events]
    assert kinds[0] == "started" and kinds[-1] == "result" and kinds[-2] == "decision"
    result = events[-1].result
    assert result.stop_reason == pb.STOP_REASON_CERTAIN
    assert result.answer == result.probes[-1].answer == result.probes[-2].answer
    streamed = "".join(event.text.text for event in events if event.HasField("text"))
    kept = result.text.split("\n\nOh, I have got the answer")[0]
    assert streamed.startswith(kept) and SCRIPT.startswith(kept)
    assert result.usage.path_tokens >= result.probes[-1].position_tokens
    assert result.usage.probe_tokens == sum(probe.tokens for probe in result.probes)
    assert result.usage.prompt_tokens > 0


async def test_chunked_path_without_exit_is_the_one_shot_path(triton_stub: pb_grpc.ReasoningServiceStub) -> None:
    question = "Janet's eggs?"
    plain = await triton_stub.Solve(pb.SolveRequest(question=question, strategy=pb.Strategy(plain=pb.PlainCot())))
    chunked = await triton_stub.Solve(
        pb.SolveRequest(question=question, strategy=dynasor(disable_early_exit=True, chunk_tokens=17))
    )
    assert chunked.result.text == plain.result.text == SCRIPT
    assert chunked.result.usage.path_tokens == plain.result.usage.path_tokens == len(SCRIPT)
    assert chunked.result.stop_reason == plain.result.stop_reason == pb.STOP_REASON_MODEL_FINISHED
    assert len(chunked.result.probes) == len(SCRIPT) // 17


async def test_cancel_reaches_the_model(
    triton_stub: pb_grpc.ReasoningServiceStub, scripted_cancel_log: Path
) -> None:
    before = scripted_cancel_log.read_text().count("\n") if scripted_cancel_log.exists() else 0
    request = pb.SolveRequest(question="[[slow:0.05]] cancel me", strategy=pb.Strategy(plain=pb.PlainCot()),
                              request_id="triton-cancel")
    solving = asyncio.ensure_future(triton_stub.Solve(request))
    await asyncio.sleep(1.0)
    assert (await triton_stub.CancelSolve(pb.CancelSolveRequest(request_id="triton-cancel"))).cancelled
    response = await solving
    assert response.status == pb.SOLVE_STATUS_CANCELLED
    assert 0 < response.result.usage.path_tokens < len(SCRIPT)
    for _ in range(50):
        lines = scripted_cancel_log.read_text().splitlines() if scripted_cancel_log.exists() else []
        if len(lines) > before:
            break
        await asyncio.sleep(0.1)
    seen = [json.loads(line) for line in lines[before:]]
    assert any("cancel me" in entry["prompt_head"] for entry in seen)


async def test_failure_mid_path_is_unavailable_with_partial_result(triton_stub: pb_grpc.ReasoningServiceStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await triton_stub.Solve(pb.SolveRequest(question="[[fail-after:50]] Q", strategy=dynasor()))
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "trtllm" in raised.value.details()
    partial = partial_result(raised.value)
    assert partial.usage.path_tokens >= 32
    assert SCRIPT.startswith(partial.text[:32])


async def test_deadline_is_deadline_exceeded_with_partial_result(triton_stub: pb_grpc.ReasoningServiceStub) -> None:
    request = pb.SolveRequest(question="[[slow:0.05]] Q", strategy=pb.Strategy(plain=pb.PlainCot()))
    request.deadline.FromMilliseconds(800)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await triton_stub.Solve(request)
    assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert partial_result(raised.value).usage.path_tokens > 0


async def test_unreachable_backend_is_unavailable_naming_it(triton_stub: pb_grpc.ReasoningServiceStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await triton_stub.Solve(pb.SolveRequest(question="Q", strategy=dynasor(), backend="nowhere"))
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "nowhere" in raised.value.details()


async def test_prompt_over_the_model_context_is_invalid_argument(triton_stub: pb_grpc.ReasoningServiceStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await triton_stub.Solve(pb.SolveRequest(raw_prompt="x" * 5000, strategy=pb.Strategy(plain=pb.PlainCot())))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "trtllm" in raised.value.details()


async def test_majority_vote_of_probed_paths_over_triton(triton_stub: pb_grpc.ReasoningServiceStub) -> None:
    strategy = pb.Strategy(majority_vote=pb.MajorityVote(n=3, dynasor_cot=pb.DynasorCot(
        chunk_tokens=32, certainty_threshold=2, probe_tokens=10, disable_early_exit=True)))
    response = await triton_stub.Solve(pb.SolveRequest(
        question="[[vote:18,\\frac{36}{2},7]] Q", strategy=strategy, sampling=pb.SamplingParams(temperature=0.7, seed=0)
    ))
    assert response.result.answer == "18"
    assert [(c.answer, c.count) for c in response.result.answer_classes] == [("18", 2), ("7", 1)]
    assert {probe.sample_index for probe in response.result.probes} == {0, 1, 2}
