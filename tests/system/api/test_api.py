"""The gRPC API end to end on a real server: streaming, status codes, idempotency, cancel, health, reflection."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import grpc
import pytest
from google.rpc import status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from certa.server import RPCS_PER_REQUEST, CertaServer
from certa.testing.redis_server import RedisServer
from certa.testing.scripted_backend import ScriptedBackend
from certa.v1 import reasoning_pb2 as pb
from certa.v1 import reasoning_pb2_grpc as pb_grpc
from tests.system.api.conftest import settings_for

pytestmark = pytest.mark.integration

FAST = pb.Strategy(dynasor_cot=pb.DynasorCot(chunk_tokens=32, certainty_threshold=2, probe_tokens=10))


def request(question: str = "How much does Janet make?", **fields: object) -> pb.SolveRequest:
    fields.setdefault("strategy", FAST)
    return pb.SolveRequest(question=question, **fields)  # type: ignore[arg-type]


async def test_solve_returns_the_answer_with_probes_and_usage(stub: pb_grpc.ReasoningServiceStub) -> None:
    response = await stub.Solve(request("[[confident-after:100]] Janet?", token_budget=1000))
    assert response.status == pb.SOLVE_STATUS_SUCCEEDED
    result = response.result
    assert result.stop_reason == pb.STOP_REASON_CERTAIN
    assert result.answer == result.probes[-1].answer
    assert len(result.probes) >= 2
    assert result.usage.path_tokens > 0 and result.usage.probe_tokens == sum(p.tokens for p in result.probes)
    assert result.tokens_saved_vs_budget == 1000 - result.usage.path_tokens
    assert response.strategy == "dynasor-cot"


async def test_stream_events_come_in_order(stub: pb_grpc.ReasoningServiceStub) -> None:
    kinds = [event.WhichOneof("event") async for event in stub.SolveStream(request("[[confident-after:100]] Q"))]
    assert kinds[0] == "started"
    assert kinds[-1] == "result"
    assert kinds[-2] == "decision"
    first_probe = kinds.index("probe")
    assert "text" in kinds[1:first_probe]
    assert kinds.count("probe") >= 2


async def test_plain_strategy_has_no_probes(stub: pb_grpc.ReasoningServiceStub) -> None:
    response = await stub.Solve(request(strategy=pb.Strategy(plain=pb.PlainCot())))
    assert response.result.answer == "18"
    assert response.result.stop_reason == pb.STOP_REASON_MODEL_FINISHED
    assert not response.result.probes and response.result.usage.probe_tokens == 0


async def test_majority_vote_reports_classes(stub: pb_grpc.ReasoningServiceStub) -> None:
    vote = pb.Strategy(majority_vote=pb.MajorityVote(n=3, plain=pb.PlainCot()))
    response = await stub.Solve(
        request("[[vote:7,0.5,\\frac{1}{2}]] Q", strategy=vote, sampling=pb.SamplingParams(temperature=0.8, seed=0))
    )
    assert response.result.answer == "0.5"
    assert [(c.answer, c.count) for c in response.result.answer_classes] == [("0.5", 2), ("7", 1)]
    assert len(response.result.samples) == 3


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        (pb.SolveRequest(question="  ", strategy=FAST), "question"),
        (pb.SolveRequest(question="q", strategy=pb.Strategy(dynasor_cot=pb.DynasorCot(certainty_threshold=0))),
         "certainty_threshold"),
        (pb.SolveRequest(question="q", strategy=pb.Strategy(dynasor_cot=pb.DynasorCot(chunk_tokens=0))),
         "chunk_tokens"),
        (pb.SolveRequest(question="q", strategy=FAST, token_budget=16), "token_budget"),
        (pb.SolveRequest(question="q", strategy=FAST, sampling=pb.SamplingParams(temperature=-0.5)),
         "sampling.temperature"),
        (pb.SolveRequest(question="q", strategy=FAST, backend="nope"), "backend"),
        (pb.SolveRequest(question="q" * 6001, strategy=FAST), "question"),
        (pb.SolveRequest(question="q", strategy=FAST, token_budget=10_000), "token_budget"),
        (pb.SolveRequest(question="q", strategy=FAST, sampling=pb.SamplingParams(repetition_penalty=1.1)), "sampling"),
        (pb.SolveRequest(question="q", strategy=pb.Strategy(majority_vote=pb.MajorityVote(n=3, plain=pb.PlainCot()))),
         "sampling.temperature"),
        (pb.SolveRequest(question="q", strategy=FAST, request_id="bad id!"), "request_id"),
        (pb.SolveRequest(question="q", strategy=FAST, request_id="x\n"), "request_id"),
        (pb.SolveRequest(question="q", strategy=FAST, model="m" * 100_000), "model: must be 1-256 characters"),
        (pb.SolveRequest(question="q", sampling=pb.SamplingParams(temperature=0.7), strategy=pb.Strategy(
            self_consistency=pb.SelfConsistency(plain=pb.PlainCot(), stop_rule=pb.StopRule(
                certaindex=pb.CertaindexRule(min_samples=2**32 - 1))))), "stop_rule.min_samples"),
        (pb.SolveRequest(question="q", strategy=pb.Strategy(dynasor_cot=pb.DynasorCot(certainty_threshold=2,
                                                                                      window=4))),
         "certainty_threshold"),
        (pb.SolveRequest(question="q", strategy=pb.Strategy(dynasor_cot=pb.DynasorCot(require_settled=True,
                                                                                      disable_early_exit=True))),
         "require_settled"),
    ],
)
async def test_bad_input_is_invalid_argument_naming_the_field(
    stub: pb_grpc.ReasoningServiceStub, bad: pb.SolveRequest, field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.Solve(bad)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in raised.value.details()


async def test_deadline_already_passed_is_invalid(stub: pb_grpc.ReasoningServiceStub) -> None:
    bad = request()
    bad.deadline.FromNanoseconds(-1)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.Solve(bad)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "deadline" in raised.value.details()


def partial_result(error: grpc.aio.AioRpcError) -> pb.SolveResult:
    details = dict(error.trailing_metadata() or ())["grpc-status-details-bin"]
    status = status_pb2.Status.FromString(details)
    result = pb.SolveResult()
    assert status.details[0].Unpack(result)
    return result


async def test_backend_failure_is_unavailable_with_the_partial_result(stub: pb_grpc.ReasoningServiceStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.Solve(request("[[fail-after:70]] Q"))
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "scripted" in raised.value.details()
    partial = partial_result(raised.value)
    assert partial.usage.path_tokens >= 70
    assert partial.text.startswith("Janet's ducks")
    assert len(partial.probes) >= 1


async def test_backend_switched_off_is_unavailable(
    stub: pb_grpc.ReasoningServiceStub, backend: ScriptedBackend
) -> None:
    backend.available = False
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.Solve(request())
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_deadline_exceeded_keeps_the_partial_result(stub: pb_grpc.ReasoningServiceStub) -> None:
    slow = request("[[slow:0.02]] Q")
    slow.deadline.FromMilliseconds(400)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.Solve(slow)
    assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert partial_result(raised.value).usage.path_tokens > 0


async def test_idempotent_retry_attaches_and_conflicting_reuse_is_refused(
    stub: pb_grpc.ReasoningServiceStub, backend: ScriptedBackend
) -> None:
    first = request("[[slow:0.005]] Q", request_id="job-1")
    responses = await asyncio.gather(stub.Solve(first), stub.Solve(first))
    assert responses[0].result == responses[1].result
    assert len({tuple(r.prompt) for r in backend.requests}) == len(backend.requests)  # nothing generated twice
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.Solve(request("another question", request_id="job-1"))
    assert raised.value.code() == grpc.StatusCode.ALREADY_EXISTS


async def test_cancel_from_another_call_stops_the_request(
    stub: pb_grpc.ReasoningServiceStub, backend: ScriptedBackend
) -> None:
    solving = asyncio.ensure_future(stub.Solve(request("[[slow:0.02]] Q", request_id="to-cancel")))
    await asyncio.sleep(0.3)
    cancelled = await stub.CancelSolve(pb.CancelSolveRequest(request_id="to-cancel"))
    assert cancelled.cancelled
    response = await solving
    assert response.status == pb.SOLVE_STATUS_CANCELLED
    assert response.result.stop_reason == pb.STOP_REASON_CANCELLED
    assert response.result.answer == ""
    assert response.result.usage.path_tokens > 0
    assert backend.cancelled
    again = await stub.CancelSolve(pb.CancelSolveRequest(request_id="to-cancel"))
    assert not again.cancelled


async def test_get_solve_reports_running_then_finished(stub: pb_grpc.ReasoningServiceStub) -> None:
    solving = asyncio.ensure_future(stub.Solve(request("[[slow:0.005]] Q", request_id="watch-me")))
    await asyncio.sleep(0.2)
    running = await stub.GetSolve(pb.GetSolveRequest(request_id="watch-me"))
    assert running.status == pb.SOLVE_STATUS_RUNNING
    final = await solving
    finished = await stub.GetSolve(pb.GetSolveRequest(request_id="watch-me"))
    assert finished.status == pb.SOLVE_STATUS_SUCCEEDED and finished.result == final.result
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.GetSolve(pb.GetSolveRequest(request_id="never-seen"))
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


async def test_health_reports_liveness_and_readiness(channel: grpc.aio.Channel, server: CertaServer,
                                                     backend: ScriptedBackend) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    live = await health.Check(health_pb2.HealthCheckRequest(service=""))
    ready = await health.Check(health_pb2.HealthCheckRequest(service="certa.v1.ReasoningService"))
    assert live.status == ready.status == health_pb2.HealthCheckResponse.SERVING
    backend.available = False
    await server._check_readiness()
    ready = await health.Check(health_pb2.HealthCheckRequest(service="certa.v1.ReasoningService"))
    assert ready.status == health_pb2.HealthCheckResponse.NOT_SERVING


async def test_reflection_lists_the_services(channel: grpc.aio.Channel) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)

    async def ask():  # type: ignore[no-untyped-def]
        yield reflection_pb2.ServerReflectionRequest(list_services="")

    async for response in stub.ServerReflectionInfo(ask()):
        names = {service.name for service in response.list_services_response.service}
        assert {"certa.v1.ReasoningService", "grpc.health.v1.Health"} <= names
        break


async def test_drain_lets_running_requests_finish_and_refuses_readiness(
    stub: pb_grpc.ReasoningServiceStub, channel: grpc.aio.Channel, server: CertaServer
) -> None:
    solving = asyncio.ensure_future(stub.Solve(request("[[slow:0.003]] Q", strategy=pb.Strategy(plain=pb.PlainCot()))))
    await asyncio.sleep(0.2)
    stopping = asyncio.ensure_future(server.stop())
    await asyncio.sleep(0.1)
    health = health_pb2_grpc.HealthStub(channel)
    ready = await health.Check(health_pb2.HealthCheckRequest(service="certa.v1.ReasoningService"))
    assert ready.status == health_pb2.HealthCheckResponse.NOT_SERVING
    response = await solving
    assert response.status == pb.SOLVE_STATUS_SUCCEEDED and response.result.answer == "18"
    await stopping


async def test_sampled_votes_without_a_seed_get_distinct_seeds(
    stub: pb_grpc.ReasoningServiceStub, backend: ScriptedBackend
) -> None:
    vote = pb.Strategy(majority_vote=pb.MajorityVote(n=4, plain=pb.PlainCot()))
    await stub.Solve(request("[[vote:1,2,3,4]] Q", strategy=vote, sampling=pb.SamplingParams(temperature=0.7)))
    seeds = [r.sampling.seed for r in backend.requests]
    assert None not in seeds and len(set(seeds)) == 4


async def test_get_solve_of_a_running_request_carries_its_partial_result(stub: pb_grpc.ReasoningServiceStub) -> None:
    solving = asyncio.ensure_future(stub.Solve(request("[[slow:0.01]] Q", request_id="partial-while-running")))
    for _ in range(50):  # until the first chunk (64 tokens at 10 ms) is counted, however loaded the machine
        await asyncio.sleep(0.1)
        running = await stub.GetSolve(pb.GetSolveRequest(request_id="partial-while-running"))
        if running.result.usage.path_tokens:
            break
    assert running.status == pb.SOLVE_STATUS_RUNNING
    assert running.result.usage.path_tokens > 0 and running.result.text
    await stub.CancelSolve(pb.CancelSolveRequest(request_id="partial-while-running"))
    await solving


async def test_same_parameters_spelled_differently_attach_to_the_same_run(stub: pb_grpc.ReasoningServiceStub) -> None:
    first = pb.SolveRequest(question="Q", strategy=pb.Strategy(dynasor_cot=pb.DynasorCot()), request_id="same")
    second = pb.SolveRequest(question="Q", request_id="same", sampling=pb.SamplingParams(),
                             strategy=pb.Strategy(dynasor_cot=pb.DynasorCot(preset=pb.DynasorCot.PRESET_AUTO)))
    assert (await stub.Solve(first)).result == (await stub.Solve(second)).result


async def test_a_client_deadline_shorter_than_the_request_deadline_still_gets_the_partial_result(
    stub: pb_grpc.ReasoningServiceStub,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.Solve(request("[[slow:0.02]] Q", strategy=pb.Strategy(plain=pb.PlainCot())), timeout=1.0)
    assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert partial_result(raised.value).usage.path_tokens > 0


async def test_shutdown_refuses_new_requests_and_interrupts_long_ones_with_their_partial_result(
    stub: pb_grpc.ReasoningServiceStub, server: CertaServer
) -> None:
    long = asyncio.ensure_future(stub.Solve(request("[[slow:0.05]] Q", strategy=pb.Strategy(plain=pb.PlainCot()))))
    await asyncio.sleep(0.3)
    stopping = asyncio.ensure_future(server.service.drain(timeout_s=0.5))
    await asyncio.sleep(0.05)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.Solve(request("Q"))
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    with pytest.raises(grpc.aio.AioRpcError) as interrupted:
        await long
    assert interrupted.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "shut down" in interrupted.value.details()
    assert partial_result(interrupted.value).usage.path_tokens > 0
    await stopping


@pytest.mark.parametrize("request_id", ["", "x\n", "x\r", "x\x00", "i" * 100_000])
async def test_get_and_cancel_refuse_malformed_ids_without_echoing_them(
    stub: pb_grpc.ReasoningServiceStub, request_id: str
) -> None:
    for call in (stub.GetSolve(pb.GetSolveRequest(request_id=request_id)),
                 stub.CancelSolve(pb.CancelSolveRequest(request_id=request_id))):
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await call
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "request_id" in raised.value.details() and len(raised.value.details()) < 300


async def test_a_request_failed_unavailable_runs_again_when_retried_with_its_id(
    stub: pb_grpc.ReasoningServiceStub, backend: ScriptedBackend
) -> None:
    backend.available = False
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.Solve(request(request_id="outage-1"))
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    backend.available = True
    response = await stub.Solve(request(request_id="outage-1"))
    undisturbed = await stub.Solve(request(request_id="outage-2"))
    assert (response.status, response.attempt) == (pb.SOLVE_STATUS_SUCCEEDED, 2)
    assert response.result.text == undisturbed.result.text and response.result.answer


async def test_calls_past_four_per_admitted_request_are_refused_at_once(redis_server: RedisServer) -> None:
    """The load campaign's fix: more than RPCS_PER_REQUEST x CERTA_MAX_CONCURRENT_REQUESTS calls at once are refused
    by gRPC with RESOURCE_EXHAUSTED instead of queueing until they time out."""
    settings = replace(settings_for({"scripted": "scripted://"}, redis_server.url), max_concurrent_requests=1)
    server = CertaServer(settings, {"scripted": ScriptedBackend()})
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = pb_grpc.ReasoningServiceStub(channel)
            slow = request("[[slow:0.01]] Q", request_id="cap-1")
            # One admitted request and three calls attached to it: RPCS_PER_REQUEST calls in flight.
            calls = [asyncio.ensure_future(stub.Solve(slow)) for _ in range(RPCS_PER_REQUEST)]
            await asyncio.sleep(0.5)
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await stub.GetSolve(pb.GetSolveRequest(request_id="cap-1"), timeout=5)
            assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            answered = await asyncio.gather(*calls)
            assert {response.request_id for response in answered} == {"cap-1"}
            # Once the others are done (server side too, a moment after their replies), a call is served again.
            for _ in range(50):
                try:
                    described = await stub.GetSolve(pb.GetSolveRequest(request_id="cap-1"), timeout=5)
                    break
                except grpc.aio.AioRpcError as error:
                    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                    await asyncio.sleep(0.1)
            assert described.status == pb.SOLVE_STATUS_SUCCEEDED
    finally:
        await server.stop()
