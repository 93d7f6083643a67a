"""Backend faults as a client and the store see them: the model server killed mid-stream, or slower than the
deadline. The request fails with the right status and its partial result, and its stored record says `failed`
with that same partial result — never `succeeded`, nothing dropped from the accounting.

(Redis restarted or lost mid-request: tests/system/state/test_store_faults.py; a replica killed with `kill -9`:
tests/system/state/test_replicas.py; `make bench-load` runs all four faults with many requests at once.)
"""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest
from certa_bench.load import partial_of, read_stored

from certa.backends.triton.backend import TritonBackend
from certa.server import CertaServer
from certa.testing.redis_server import RedisServer
from certa.testing.scripted_backend import ScriptedBackend
from certa.v1 import reasoning_pb2 as pb
from certa.v1 import reasoning_pb2_grpc as pb_grpc
from certa_triton_local.launcher import TritonServer
from tests.conftest import SCRIPTED_REPOSITORY
from tests.system.api.conftest import settings_for
from tests.system.state.test_replicas import LONG, QUESTION

pytestmark = pytest.mark.integration

STREAMS = 4
UNARY = 2


@pytest.fixture
def doomed_triton(tmp_path: Path) -> Iterator[TritonServer]:
    """A scripted Triton server of this test's own, which the test kills."""
    with TritonServer(model_repository=SCRIPTED_REPOSITORY, log_path=tmp_path / "tritonserver.log") as server:
        yield server


def kill_9(server: TritonServer) -> None:
    """SIGKILL the server and its Python-backend stubs (its own process group), as a crashed pod would die."""
    process = server._process  # the launcher has no public kill: stop() is graceful
    assert process is not None and process.poll() is None
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


@pytest.fixture
async def controller(doomed_triton: TritonServer, redis_server: RedisServer) -> AsyncIterator[CertaServer]:
    settings = settings_for({"trtllm": f"triton://{doomed_triton.grpc_url}"}, redis_server.url)
    backends = {spec.name: TritonBackend(spec, connect_timeout_s=2.0) for spec in settings.backends}
    server = CertaServer(settings, backends)
    await server.start()
    yield server
    await server.stop()


async def until_probes(call: grpc.aio.UnaryStreamCall, probes: int) -> int:
    """Read a stream until `probes` probe events arrived; the characters of text streamed by then."""
    seen = streamed = 0
    async for event in call:
        streamed += len(event.text.text) if event.HasField("text") else 0
        seen += event.HasField("probe")
        if seen == probes:
            return streamed
    raise AssertionError("the stream ended before the backend was killed")


async def test_a_backend_killed_mid_stream_fails_the_requests_with_their_partial_results(
    controller: CertaServer, doomed_triton: TritonServer, redis_server: RedisServer
) -> None:
    run = uuid.uuid4().hex[:6]
    streamed_requests = [
        pb.SolveRequest(question=QUESTION, strategy=LONG, request_id=f"stream-{run}-{i}") for i in range(STREAMS)
    ]
    unary_requests = [
        pb.SolveRequest(question=QUESTION, strategy=LONG, request_id=f"unary-{run}-{i}") for i in range(UNARY)
    ]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{controller.port}") as channel:
        stub = pb_grpc.ReasoningServiceStub(channel)
        calls = [stub.SolveStream(request, timeout=60) for request in streamed_requests]
        solving = [asyncio.ensure_future(stub.Solve(request, timeout=60)) for request in unary_requests]
        streamed = await asyncio.gather(*(until_probes(call, probes=3) for call in calls))
        kill_9(doomed_triton)

        errors: list[grpc.aio.AioRpcError] = []
        for call in calls:
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                async for _ in call:
                    pass
            errors.append(raised.value)
        for future in solving:
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await future
            errors.append(raised.value)

        requests = [*streamed_requests, *unary_requests]
        partials = []
        for index, error in enumerate(errors):
            assert error.code() == grpc.StatusCode.UNAVAILABLE, error.details()
            partial = partial_of(error)
            assert partial is not None, f"no partial result in the status of {requests[index].request_id}"
            # Scripted tokens are characters: every token the backend streamed is counted, with its text.
            assert 0 < partial.usage.path_tokens == len(partial.text)
            assert partial.usage.probe_tokens > 0 and partial.probes
            assert not partial.answer
            partials.append(partial)
        for partial, chars in zip(partials, streamed, strict=False):
            # The partial result holds at least what its stream showed: the text and the three probes.
            assert len(partial.text) >= chars and len(partial.probes) >= 3

        # What the store keeps, through the API and in Redis itself: failed, with the same partial result.
        for request, partial in zip(requests, partials, strict=True):
            described = await stub.GetSolve(pb.GetSolveRequest(request_id=request.request_id), timeout=10)
            assert described.status == pb.SOLVE_STATUS_FAILED
            assert described.result == partial
            assert described.error
        stored = await read_stored(
            redis_server.url, controller.settings.store.key_prefix, [r.request_id for r in requests]
        )
        assert {record.status for record in stored.values()} == {"failed"}
        assert [stored[r.request_id].result for r in requests] == partials

        # UNAVAILABLE is retryable: a retry with the same id runs the request again as its second attempt (not the
        # stored failure forever), which fails the same way while the backend is still down.
        with pytest.raises(grpc.aio.AioRpcError) as retried:
            await stub.Solve(unary_requests[0], timeout=30)
        assert retried.value.code() == grpc.StatusCode.UNAVAILABLE
        [again] = (
            await read_stored(redis_server.url, controller.settings.store.key_prefix, [unary_requests[0].request_id])
        ).values()
        assert (again.status, again.attempt) == ("failed", 2)


async def test_a_backend_slower_than_the_deadline_fails_deadline_exceeded_and_stores_the_partial(
    redis_server: RedisServer,
) -> None:
    backend = ScriptedBackend(name="instant", record=False)
    settings = settings_for({"instant": "scripted://"}, redis_server.url)
    server = CertaServer(settings, {"instant": backend})
    await server.start()
    run = uuid.uuid4().hex[:6]
    requests = [
        pb.SolveRequest(question=f"[[slow:0.02]] Q{i}", strategy=LONG, request_id=f"slow-{run}-{i}") for i in range(4)
    ]
    for request in requests:
        request.deadline.FromMilliseconds(600)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = pb_grpc.ReasoningServiceStub(channel)
            results = await asyncio.gather(
                *(stub.Solve(request, timeout=30) for request in requests), return_exceptions=True
            )
    finally:
        await server.stop()
    partials = []
    for result in results:
        assert isinstance(result, grpc.aio.AioRpcError), result
        assert result.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        partial = partial_of(result)
        assert partial is not None and 0 < partial.usage.path_tokens < 234
        partials.append(partial)
    stored = await read_stored(redis_server.url, settings.store.key_prefix, [r.request_id for r in requests])
    assert [stored[r.request_id].status for r in requests] == ["failed"] * len(requests)
    assert [stored[r.request_id].result for r in requests] == partials
    # Every token the backend streamed before the deadline is in a stored partial result.
    assert backend.tokens == sum(p.usage.path_tokens + p.usage.probe_tokens for p in partials)
