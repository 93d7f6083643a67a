"""Per-tenant quotas shared by replicas through a real Redis: in flight, tokens per minute, tokens per request;
RESOURCE_EXHAUSTED says how long to wait, and limits reload without a restart."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from certa.server import CertaServer
from certa.store.quotas.port import WINDOW_MS, window_wait_ms
from certa.v1 import reasoning_pb2 as pb
from certa.v1 import reasoning_pb2_grpc as pb_grpc
from tests.system.api.conftest import Replicas

pytestmark = pytest.mark.integration

SLOW = pb.SolveRequest(question="[[slow:0.01]] Q", strategy=pb.Strategy(plain=pb.PlainCot()))
FAST = pb.SolveRequest(question="Q", strategy=pb.Strategy(plain=pb.PlainCot()))


def tenant(name: str) -> tuple[tuple[str, str], ...]:
    return (("x-certa-tenant", name),)


def retry_delay_s(error: grpc.aio.AioRpcError) -> float | None:
    status = rpc_status.from_call(error)
    for detail in status.details if status else ():
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            return info.retry_delay.ToMilliseconds() / 1000
    return None


def stub(server: CertaServer) -> tuple[grpc.aio.Channel, pb_grpc.ReasoningServiceStub]:
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
    return channel, pb_grpc.ReasoningServiceStub(channel)


async def test_in_flight_limit_holds_across_replicas_and_other_tenants_are_unaffected(replicas: Replicas) -> None:
    replicas.limits(acme={"max_in_flight": 1})
    (first_channel, first), (second_channel, second) = stub(replicas.servers[0]), stub(replicas.servers[1])
    async with first_channel, second_channel:
        running = asyncio.ensure_future(first.Solve(SLOW, metadata=tenant("acme")))
        await asyncio.sleep(0.2)
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await second.Solve(FAST, metadata=tenant("acme"))  # on the other replica
        assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "in flight" in raised.value.details() and retry_delay_s(raised.value) == 1.0
        assert (await second.Solve(FAST, metadata=tenant("globex"))).status == pb.SOLVE_STATUS_SUCCEEDED
        await running
        assert (await second.Solve(FAST, metadata=tenant("acme"))).status == pb.SOLVE_STATUS_SUCCEEDED


async def test_tokens_per_minute_say_how_long_to_wait(replicas: Replicas) -> None:
    replicas.limits(acme={"tokens_per_minute": 100})
    channel, solve = stub(replicas.servers[0])
    async with channel:
        spent = await solve.Solve(FAST, metadata=tenant("acme"))
        assert spent.result.usage.path_tokens > 100
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await solve.Solve(FAST, metadata=tenant("acme"))
    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "tokens per minute" in raised.value.details()
    delay = retry_delay_s(raised.value)
    assert delay is not None and 0 < delay <= 2 * WINDOW_MS / 1000


async def test_tokens_per_request_and_reload_without_restart(replicas: Replicas) -> None:
    channel, solve = stub(replicas.servers[0])
    big = replace_budget(FAST, 1000)
    async with channel:
        assert (await solve.Solve(big, metadata=tenant("acme"))).status == pb.SOLVE_STATUS_SUCCEEDED
        replicas.limits(acme={"max_tokens_per_request": 500})
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await solve.Solve(big, metadata=tenant("acme"))
    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "500 tokens per request" in raised.value.details()
    assert retry_delay_s(raised.value) is None  # waiting would not help


def replace_budget(request: pb.SolveRequest, budget: int) -> pb.SolveRequest:
    copy = pb.SolveRequest()
    copy.CopyFrom(request)
    copy.token_budget = budget
    return copy


@pytest.mark.parametrize(
    ("into_ms", "current", "previous", "limit", "wait_ms"),
    [
        (30_000, 10, 10, 100, 0),  # under the limit
        (30_000, 50, 100, 100, 1),  # 50 + 100 × 0.5 = 100, at the limit: a millisecond later it is below
        (0, 0, 200, 100, 30_001),  # the previous minute must be half gone
        (45_000, 150, 0, 100, 15_000 + 20_000),  # next minute, then a third of this one's weight must go
    ],
)
def test_window_waits(into_ms: int, current: int, previous: int, limit: int, wait_ms: int) -> None:
    assert window_wait_ms(10 * WINDOW_MS + into_ms, current, previous, limit) == wait_ms
