"""Load spreading by connection age: a server started after a client connected receives that client's calls once
the old connection reaches CERTA_GRPC_MAX_CONNECTION_AGE_S.

Two real gRPC servers (CertaServer, in-process) listen on the same port with SO_REUSEPORT, which gRPC sets on
Linux: like a Kubernetes ClusterIP, the kernel picks a server for every new TCP connection, never for a call. The
client is a real gRPC channel to that one address. Without a connection age it keeps its first connection, so the
new server gets nothing; with one, the old server sends GOAWAY, the channel reconnects, and new connections land
on either server. A call running when the age is reached finishes (the grace follows CERTA_MAX_DEADLINE_S).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import grpc
import pytest

from certa.config import GrpcSettings, Settings
from certa.testing.scripted_backend import ScriptedBackend
from certa.v1 import reasoning_pb2 as pb
from certa.v1 import reasoning_pb2_grpc as pb_grpc
from tests.system.api.conftest import settings_for, started

pytestmark = pytest.mark.integration

AGE_S = 1.0
# Each reconnection picks either server (a hash of the new source port): 20 ages without reaching the new one
# happen about once in a million runs.
REACH_WITHIN_S = 20 * AGE_S
PLAIN = pb.Strategy(plain=pb.PlainCot())


def aged_settings(age_s: float) -> Settings:
    settings = settings_for({"scripted": "scripted://"})
    return replace(settings, default_deadline_s=10, max_deadline_s=10, grpc=GrpcSettings(max_connection_age_s=age_s))


async def solve(stub: pb_grpc.ReasoningServiceStub, question: str = "How much does Janet make?") -> None:
    response = await stub.Solve(pb.SolveRequest(question=question, strategy=PLAIN), timeout=10)
    assert response.status == pb.SOLVE_STATUS_SUCCEEDED


async def test_a_new_server_gets_calls_from_an_existing_client_after_the_connection_age() -> None:
    old_backend = ScriptedBackend()
    old = await started(aged_settings(AGE_S), {"scripted": old_backend})
    address = f"127.0.0.1:{old.port}"
    try:
        async with grpc.aio.insecure_channel(address) as channel:
            stub = pb_grpc.ReasoningServiceStub(channel)
            await solve(stub)  # the client is connected, to the only server there is
            assert len(old_backend.requests) == 1
            # A slow call (about 2.3 s, longer than the age) is running when the new server comes up ...
            running = asyncio.create_task(solve(stub, "[[slow:0.01]] How much does Janet make?"))
            new_backend = ScriptedBackend()
            new = await started(replace(aged_settings(AGE_S), listen_address=address), {"scripted": new_backend})
            try:
                assert new.port == old.port
                deadline = time.monotonic() + REACH_WITHIN_S
                while not new_backend.requests and time.monotonic() < deadline:
                    await solve(stub)
                    await asyncio.sleep(0.05)
                assert new_backend.requests, f"the new server got no call within {REACH_WITHIN_S:g} s"
                # ... and finishes on the old server although its connection aged out meanwhile.
                await running
            finally:
                await new.stop()
    finally:
        await old.stop()


async def test_without_a_connection_age_the_client_stays_on_one_server() -> None:
    """The control: the same client and servers with CERTA_GRPC_MAX_CONNECTION_AGE_S=0 (gRPC's default)."""
    old_backend, new_backend = ScriptedBackend(), ScriptedBackend()
    old = await started(aged_settings(0.0), {"scripted": old_backend})
    address = f"127.0.0.1:{old.port}"
    new = await started(replace(aged_settings(0.0), listen_address=address), {"scripted": new_backend})
    try:
        async with grpc.aio.insecure_channel(address) as channel:
            stub = pb_grpc.ReasoningServiceStub(channel)
            calls = 0
            deadline = time.monotonic() + 4 * AGE_S
            while time.monotonic() < deadline:
                await solve(stub)
                calls += 1
                await asyncio.sleep(0.05)
        # Every call went over the first connection, to whichever server the kernel gave it.
        assert sorted([len(old_backend.requests), len(new_backend.requests)]) == [0, calls]
    finally:
        await new.stop()
        await old.stop()
