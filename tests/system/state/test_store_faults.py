"""Redis faults as a controller meets them: restarted, lost, unreachable at start, or holding foreign data.

Each test has its own `redis-server` (the `fresh_redis` fixture), which it may stop, restart or kill; the
controller runs in process against the real scripted Triton server.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from grpc_health.v1 import health_pb2, health_pb2_grpc
from redis.asyncio import Redis

from certa.backends.triton.backend import TritonBackend
from certa.server import CertaServer
from certa.store.requests.port import RequestKey
from certa.testing.redis_server import RedisServer
from certa.v1 import reasoning_pb2 as pb
from certa.v1 import reasoning_pb2_grpc as pb_grpc
from certa_triton_local.launcher import TritonServer, free_port
from tests.system.api.conftest import settings_for
from tests.system.state.test_replicas import LONG, QUESTION, partial_of
from tests.unit.store.test_store_values_schema2 import V2_FINISHED

pytestmark = pytest.mark.integration


async def controller(triton: TritonServer, redis_url: str, **store: object) -> CertaServer:
    settings = settings_for({"trtllm": f"triton://{triton.grpc_url}"}, redis_url, **store)
    backends = {spec.name: TritonBackend(spec, connect_timeout_s=2.0) for spec in settings.backends}
    server = CertaServer(settings, backends)
    await server.start()
    return server


@pytest.fixture
async def served(scripted_triton: TritonServer, fresh_redis: RedisServer) -> AsyncIterator[CertaServer]:
    server = await controller(scripted_triton, fresh_redis.url, lease_s=1.0, sweep_interval_s=0.2)
    yield server
    await server.stop()


def long_request() -> pb.SolveRequest:
    return pb.SolveRequest(question=QUESTION, strategy=LONG, request_id=f"r-{uuid.uuid4().hex[:8]}")


async def test_a_redis_restart_mid_request_loses_no_checkpoint(served: CertaServer, fresh_redis: RedisServer) -> None:
    request = long_request()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{served.port}") as channel:
        solving = asyncio.ensure_future(pb_grpc.ReasoningServiceStub(channel).Solve(request))
        await asyncio.sleep(1.0)
        await asyncio.to_thread(fresh_redis.restart)
        response = await solving
    assert (response.status, response.attempt) == (pb.SOLVE_STATUS_SUCCEEDED, 1)
    client = Redis.from_url(fresh_redis.url)
    meta = served.service.store.keys(RequestKey("default", request.request_id))[0]  # type: ignore[attr-defined]
    # One journal entry per outcome the strategy consumed: every chunk and every probe (the finish dropped the
    # journal and kept its length).
    chunks = -(-response.result.usage.path_tokens // 16)
    assert int(await client.hget(meta, "journal_entries")) == chunks + len(response.result.probes)
    await client.aclose()


async def test_redis_lost_mid_request_is_unavailable_with_the_partial_result_then_resumes_when_back(
    served: CertaServer, fresh_redis: RedisServer
) -> None:
    request = long_request()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{served.port}") as channel:
        stub = pb_grpc.ReasoningServiceStub(channel)
        solving = asyncio.ensure_future(stub.Solve(request))
        await asyncio.sleep(1.0)
        await asyncio.to_thread(fresh_redis.kill)
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await solving
        assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "redis" in raised.value.details()
        partial = partial_of(raised.value)
        assert partial.usage.path_tokens > 0 and partial.text
        await asyncio.to_thread(fresh_redis.start)  # the append-only file brings the checkpoints back
        resumed = await stub.Solve(request)  # the client retries with the same id
    assert (resumed.status, resumed.attempt) == (pb.SOLVE_STATUS_SUCCEEDED, 2)
    assert resumed.result.text.startswith(partial.text[: len(partial.text) // 2])


async def test_redis_restarted_without_its_data_is_unavailable_with_the_partial_result_and_a_retry_starts_over(
    served: CertaServer, fresh_redis: RedisServer
) -> None:
    request = long_request()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{served.port}") as channel:
        stub = pb_grpc.ReasoningServiceStub(channel)
        solving = asyncio.ensure_future(stub.Solve(request))
        await asyncio.sleep(1.0)
        client = Redis.from_url(fresh_redis.url)
        await client.flushall()  # what a restart without the append-only file leaves
        await client.aclose()
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await solving
        assert raised.value.code() == grpc.StatusCode.UNAVAILABLE, raised.value.details()
        assert "vanished" in raised.value.details()
        partial = partial_of(raised.value)
        assert partial.usage.path_tokens > 0 and partial.text
        retried = await stub.Solve(request)  # the record is gone: the retry is a new request
    assert (retried.status, retried.attempt) == (pb.SOLVE_STATUS_SUCCEEDED, 1)


async def test_unreachable_redis_at_start_means_not_ready_and_unavailable(scripted_triton: TritonServer) -> None:
    server = await controller(scripted_triton, f"redis://127.0.0.1:{free_port()}/0", redis_timeout_s=0.2)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            health = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service="certa.v1.ReasoningService")
            )
            assert health.status == health_pb2.HealthCheckResponse.NOT_SERVING
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await pb_grpc.ReasoningServiceStub(channel).Solve(long_request())
            assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "redis unreachable" in raised.value.details()
    finally:
        await server.stop()


async def test_foreign_data_under_a_request_key_is_data_loss_naming_the_key(
    served: CertaServer, fresh_redis: RedisServer
) -> None:
    client = Redis.from_url(fresh_redis.url)
    meta = served.service.store.keys(RequestKey("default", "foreign"))[0]  # type: ignore[attr-defined]
    await client.hset(meta, mapping={"v": "7", "status": "running"})
    async with grpc.aio.insecure_channel(f"127.0.0.1:{served.port}") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await pb_grpc.ReasoningServiceStub(channel).GetSolve(pb.GetSolveRequest(request_id="foreign"))
    assert raised.value.code() == grpc.StatusCode.DATA_LOSS
    assert meta in raised.value.details() and "schema version" in raised.value.details()
    await client.aclose()


async def test_a_result_the_previous_release_stored_is_served_as_it_was(
    served: CertaServer, fresh_redis: RedisServer
) -> None:
    plain, request_id = pb.Strategy(plain=pb.PlainCot()), f"r-{uuid.uuid4().hex[:8]}"
    request = pb.SolveRequest(question="How much does Janet make?", strategy=plain, request_id=request_id)
    client = Redis.from_url(fresh_redis.url)
    meta = served.service.store.keys(RequestKey("default", request.request_id))[0]  # type: ignore[attr-defined]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{served.port}") as channel:
        stub = pb_grpc.ReasoningServiceStub(channel)
        assert (await stub.Solve(request)).status == pb.SOLVE_STATUS_SUCCEEDED
        await client.hset(meta, mapping={"v": "2", "summary": V2_FINISHED})  # as a schema 2 replica finished it
        response = await stub.GetSolve(pb.GetSolveRequest(request_id=request.request_id))
    await client.aclose()
    probe = pb.Probe(sample_index=1, position_tokens=64, answer="18", confident=True, tokens=7)
    assert response.status == pb.SOLVE_STATUS_SUCCEEDED
    assert response.result == pb.SolveResult(
        answer="18",
        stop_reason=pb.STOP_REASON_VOTED,
        text="so 9 * 2 = 18",
        usage=pb.TokenUsage(prompt_tokens=40, path_tokens=240, probe_tokens=28, cached_prompt_tokens=30),
        probes=[probe],
        wall_time=Duration(seconds=1, nanos=250_000_000),
        samples=[pb.Sample(index=1, answer="18", stop_reason=pb.STOP_REASON_CERTAIN, path_tokens=120, probe_tokens=14)],
        answer_classes=[pb.AnswerClass(answer="18", count=2)],
        rounds=[pb.Round(samples=[0, 1], drawn=2, certaindex=0.8, statistic=0.8, stop=True, reason="certain")],
        stop_detail="certaindex 0.80 >= 0.70",
        batch=pb.BatchSummary(
            questions=2, failed_questions=1, samples_spent=4, tokens_spent=900, budget=pb.BatchBudget(samples=8)
        ),
    )
