"""Several controller replicas sharing one Redis and one Triton: resumption after `kill -9`, attach, cancel and
tenant isolation across replicas. The replicas are real `certa serve` processes (or, where a process boundary
adds nothing, in-process servers); Redis and Triton (with the scripted models) are real servers."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest
from grpc_status import rpc_status
from redis.asyncio import Redis

from certa.api.auth import TENANT_METADATA
from certa.testing.certa_serve import CertaServe
from certa.testing.redis_server import RedisServer
from certa.v1 import reasoning_pb2 as pb
from certa.v1 import reasoning_pb2_grpc as pb_grpc
from certa_triton_local.launcher import TritonServer

pytestmark = pytest.mark.integration

LEASE_S = 1.5
# A long path: 0.02 s per token of the ~230-token script, a probe after every 16 tokens, no early exit.
LONG = pb.Strategy(
    dynasor_cot=pb.DynasorCot(chunk_tokens=16, certainty_threshold=2, probe_tokens=8, disable_early_exit=True)
)
QUESTION = "[[slow:0.02]] How much does Janet make?"


class Replica(CertaServe):
    """`certa serve` as a process, configured like a pod of the chart (Redis store, short lease for the test)."""

    def __init__(
        self, name: str, triton: TritonServer, redis: RedisServer, prefix: str, log_dir: Path, drain_s: float = 0.5
    ) -> None:
        self.name = name
        settings = {
            "CERTA_REPLICA_ID": name,
            "CERTA_LEASE_S": str(LEASE_S),
            "CERTA_SWEEP_INTERVAL_S": "0.3",
            "CERTA_DRAIN_TIMEOUT_S": str(drain_s),
        }
        backends = f"trtllm=triton://{triton.grpc_url}"
        super().__init__(backends, redis.url, prefix, log_dir / f"controller-{name}.log", settings)


@pytest.fixture
def replicas(
    scripted_triton: TritonServer, redis_server: RedisServer, tmp_path: Path
) -> Iterator[tuple[Replica, Replica, str]]:
    prefix = f"replicas-{uuid.uuid4().hex[:8]}"
    first = Replica("replica-a", scripted_triton, redis_server, prefix, tmp_path)
    second = Replica("replica-b", scripted_triton, redis_server, prefix, tmp_path)
    yield first, second, prefix
    first.kill()
    second.kill()


@pytest.fixture
async def redis_client(redis_server: RedisServer) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_server.url)
    yield client
    await client.aclose()


def stub_for(channel: grpc.aio.Channel) -> pb_grpc.ReasoningServiceStub:
    return pb_grpc.ReasoningServiceStub(channel)


def rebuild_text(events: list[pb.SolveEvent]) -> str:
    """What a client shows: text events appended, cut back to the checkpoint at each `resumed` event."""
    text = ""
    for event in events:
        if event.HasField("text"):
            text += event.text.text
        elif event.HasField("resumed"):
            kept = {path.sample_index: path.text_chars for path in event.resumed.paths}
            text = text[: kept.get(0, 0)]
    return text


async def test_a_killed_replica_s_request_is_finished_by_another_from_its_checkpoint(
    replicas: tuple[Replica, Replica, str], redis_client: Redis
) -> None:
    first, second, prefix = replicas
    request = pb.SolveRequest(question=QUESTION, strategy=LONG, request_id=f"long-{uuid.uuid4().hex[:6]}")
    async with (
        grpc.aio.insecure_channel(first.address) as to_first,
        grpc.aio.insecure_channel(second.address) as to_second,
    ):
        streaming = stub_for(to_first).SolveStream(request)
        seen: list[pb.SolveEvent] = []
        async for event in streaming:
            seen.append(event)
            if sum(event.HasField("probe") for event in seen) == 4:
                break
        before = await stub_for(to_second).GetSolve(pb.GetSolveRequest(request_id=request.request_id))
        assert before.status == pb.SOLVE_STATUS_RUNNING and before.attempt == 1
        first.kill()
        with pytest.raises(grpc.aio.AioRpcError) as broken:
            async for event in streaming:
                seen.append(event)
        assert broken.value.code() == grpc.StatusCode.UNAVAILABLE

        # Nobody asks: replica B's sweep finds the orphan once its lease has expired, and takes it over.
        meta = f"{prefix}:{{default/{request.request_id}}}:meta"
        lease = f"{prefix}:{{default/{request.request_id}}}:lease"
        deadline = time.monotonic() + 10 * LEASE_S
        while await redis_client.get(lease) != b"replica-b":
            assert time.monotonic() < deadline, f"replica B never took the request over:\n{second.log()}"
            await asyncio.sleep(0.1)
        assert await redis_client.hget(meta, "attempt") == b"2"

        # The client reconnects through replica B with the same request id and gets the whole story.
        events = [event async for event in stub_for(to_second).SolveStream(request)]
        reference = await stub_for(to_second).Solve(
            pb.SolveRequest(question=QUESTION, strategy=LONG, request_id=f"reference-{uuid.uuid4().hex[:6]}")
        )

    result = events[-1].result
    assert [event.WhichOneof("event") for event in events].count("resumed") == 1
    assert result.text == reference.result.text
    assert rebuild_text(events) == result.text
    # Probe history continuous: one probe every 16 path tokens, none lost, none repeated.
    positions = [probe.position_tokens for probe in result.probes]
    assert positions == [probe.position_tokens for probe in reference.result.probes]
    assert positions == list(range(16, 16 * len(positions) + 1, 16))
    # Tokens: what the dead replica had checkpointed plus what replica B generated, nothing counted twice.
    assert 0 < before.result.usage.path_tokens < result.usage.path_tokens
    assert result.usage.path_tokens == reference.result.usage.path_tokens == len(result.text)
    assert result.usage.probe_tokens == reference.result.usage.probe_tokens
    final = await_get(second, request.request_id)
    assert (final.status, final.attempt) == (pb.SOLVE_STATUS_SUCCEEDED, 2)
    assert "resuming request default/" in second.log()


async def test_a_draining_replica_hands_its_requests_over(replicas: tuple[Replica, Replica, str]) -> None:
    first, second, _ = replicas
    request = pb.SolveRequest(question=QUESTION, strategy=LONG, request_id=f"drain-{uuid.uuid4().hex[:6]}")
    async with (
        grpc.aio.insecure_channel(first.address) as to_first,
        grpc.aio.insecure_channel(second.address) as to_second,
    ):
        solving = asyncio.ensure_future(stub_for(to_first).Solve(request))
        await asyncio.sleep(0.8)
        first.process.send_signal(signal.SIGTERM)  # drain timeout 0.5 s: the request is still running then
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await solving
        assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "shut down" in raised.value.details()
        assert partial_of(raised.value).usage.path_tokens > 0
        assert first.process.wait(timeout=20) == 0
        finished = await stub_for(to_second).Solve(request)  # the client retries on another replica
    assert (finished.status, finished.attempt) == (pb.SOLVE_STATUS_SUCCEEDED, 2)
    assert finished.result.usage.path_tokens == len(finished.result.text)


def await_get(replica: Replica, request_id: str, tenant: str = "default") -> pb.SolveResponse:
    with grpc.insecure_channel(replica.address) as channel:
        return pb_grpc.ReasoningServiceStub(channel).GetSolve(
            pb.GetSolveRequest(request_id=request_id), metadata=((TENANT_METADATA, tenant),), timeout=5
        )


async def test_a_retry_on_another_replica_attaches_instead_of_starting_again(
    replicas: tuple[Replica, Replica, str],
) -> None:
    first, second, _ = replicas
    request = pb.SolveRequest(question=QUESTION, strategy=LONG, request_id=f"retry-{uuid.uuid4().hex[:6]}")
    async with (
        grpc.aio.insecure_channel(first.address) as to_first,
        grpc.aio.insecure_channel(second.address) as to_second,
    ):
        original = asyncio.ensure_future(stub_for(to_first).Solve(request))
        await asyncio.sleep(0.5)
        retried = await stub_for(to_second).Solve(request)
        assert (await original) == retried
    assert retried.attempt == 1  # one run, on replica A
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        async with grpc.aio.insecure_channel(second.address) as channel:
            await stub_for(channel).Solve(
                pb.SolveRequest(question="other", strategy=LONG, request_id=request.request_id)
            )
    assert raised.value.code() == grpc.StatusCode.ALREADY_EXISTS


async def test_cancel_through_another_replica_stops_the_owner_within_a_round(
    replicas: tuple[Replica, Replica, str],
) -> None:
    first, second, _ = replicas
    request = pb.SolveRequest(question=QUESTION, strategy=LONG, request_id=f"cancel-{uuid.uuid4().hex[:6]}")
    async with (
        grpc.aio.insecure_channel(first.address) as to_first,
        grpc.aio.insecure_channel(second.address) as to_second,
    ):
        solving = asyncio.ensure_future(stub_for(to_first).Solve(request))
        await asyncio.sleep(0.8)
        asked = time.monotonic()
        cancelled = await stub_for(to_second).CancelSolve(pb.CancelSolveRequest(request_id=request.request_id))
        assert cancelled.cancelled
        response = await solving
        # One round is a 16-token chunk at 0.02 s per token; a heartbeat comes every LEASE_S / 3.
        assert time.monotonic() - asked < 16 * 0.02 + LEASE_S
    assert response.status == pb.SOLVE_STATUS_CANCELLED
    assert response.result.stop_reason == pb.STOP_REASON_CANCELLED
    assert 0 < response.result.usage.path_tokens < 200


async def test_a_tenant_cannot_see_another_tenant_s_request(replicas: tuple[Replica, Replica, str]) -> None:
    first, second, _ = replicas
    request_id = f"private-{uuid.uuid4().hex[:6]}"
    acme, globex = ((TENANT_METADATA, "acme"),), ((TENANT_METADATA, "globex"),)
    fast = pb.SolveRequest(question="Q", strategy=pb.Strategy(plain=pb.PlainCot()), request_id=request_id)
    async with (
        grpc.aio.insecure_channel(first.address) as to_first,
        grpc.aio.insecure_channel(second.address) as to_second,
    ):
        mine = await stub_for(to_first).Solve(fast, metadata=acme)
        assert mine.status == pb.SOLVE_STATUS_SUCCEEDED
        for call in (
            stub_for(to_second).GetSolve(pb.GetSolveRequest(request_id=request_id), metadata=globex),
            stub_for(to_second).CancelSolve(pb.CancelSolveRequest(request_id=request_id), metadata=globex),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await call
            assert raised.value.code() == grpc.StatusCode.NOT_FOUND
        assert (await stub_for(to_second).GetSolve(pb.GetSolveRequest(request_id=request_id), metadata=acme)) == mine
        # The same id in another tenant is another request, not a conflict.
        other = pb.SolveRequest(question="Another", strategy=pb.Strategy(plain=pb.PlainCot()), request_id=request_id)
        assert (await stub_for(to_second).Solve(other, metadata=globex)).status == pb.SOLVE_STATUS_SUCCEEDED
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub_for(to_second).GetSolve(
                pb.GetSolveRequest(request_id=request_id), metadata=((TENANT_METADATA, "no/slashes"),)
            )
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert TENANT_METADATA in raised.value.details()


def partial_of(error: grpc.aio.AioRpcError) -> pb.SolveResult:
    status = rpc_status.from_call(error)
    assert status is not None and status.details, "no partial result in the status details"
    result = pb.SolveResult()
    status.details[0].Unpack(result)
    return result
