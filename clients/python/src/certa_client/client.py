"""Clients of the Certa reasoning API: `Client` (blocking) and `AsyncClient` (asyncio), one method per RPC.

A question given as a string is solved with Dynasor-CoT (preset mid); build any other request with
`certa_client.build`. Errors are grpc.RpcError (grpc.aio.AioRpcError for AsyncClient) with the server's status
code; `certa_client.errors.partial_result` reads the partial result an interrupted solve carries.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from types import TracebackType
from typing import Union

from certa_client.build import solve_request
from certa_client.target import Target
from certa_client.v1 import reasoning_pb2 as pb
from certa_client.v1 import reasoning_pb2_grpc as pb_grpc

SolveInput = Union[pb.SolveRequest, str]


def _request(request: SolveInput) -> pb.SolveRequest:
    return solve_request(request) if isinstance(request, str) else request


def _target(target: Target | str | None) -> Target:
    if target is None:
        return Target.from_env()
    return Target(address=target) if isinstance(target, str) else target


class Client:
    """A blocking client. `target` is a Target, an address, or None for the CERTA_* environment variables.

    `timeout_s` bounds every call (None: no client-side limit; the server applies its own deadline).
    Use it as a context manager, or call `close()`.
    """

    def __init__(self, target: Target | str | None = None, *, timeout_s: float | None = None) -> None:
        self.target = _target(target)
        self.timeout_s = timeout_s
        self._channel = self.target.channel()
        self.stub = pb_grpc.ReasoningServiceStub(self._channel)

    def solve(self, request: SolveInput) -> pb.SolveResponse:
        """Run a strategy to completion."""
        return self.stub.Solve(_request(request), timeout=self.timeout_s)

    def stream(self, request: SolveInput) -> Iterator[pb.SolveEvent]:
        """Run a strategy, yielding its progress: started, text, probe, decision, ..., then result."""
        yield from self.stub.SolveStream(_request(request), timeout=self.timeout_s)

    def get(self, request_id: str) -> pb.SolveResponse:
        """The state of a request started earlier: running (with its partial result) or finished."""
        return self.stub.GetSolve(pb.GetSolveRequest(request_id=request_id), timeout=self.timeout_s)

    def cancel(self, request_id: str) -> pb.CancelSolveResponse:
        """Stop a running request (its partial result is kept); `cancelled` is false when it had finished."""
        return self.stub.CancelSolve(pb.CancelSolveRequest(request_id=request_id), timeout=self.timeout_s)

    def batch(self, request: pb.SolveBatchRequest) -> Iterator[pb.SolveEvent]:
        """Spread a budget over a batch of questions, yielding started, one question event per question as soon
        as it is final, then the result with the batch summary."""
        yield from self.stub.SolveBatch(request, timeout=self.timeout_s)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()


class AsyncClient:
    """An asyncio client: the same methods as Client, awaited (streams are async iterators).

    Create it inside a running event loop; use `async with`, or `await close()`.
    """

    def __init__(self, target: Target | str | None = None, *, timeout_s: float | None = None) -> None:
        self.target = _target(target)
        self.timeout_s = timeout_s
        self._channel = self.target.aio_channel()
        self.stub = pb_grpc.ReasoningServiceStub(self._channel)

    async def solve(self, request: SolveInput) -> pb.SolveResponse:
        """Run a strategy to completion."""
        return await self.stub.Solve(_request(request), timeout=self.timeout_s)

    async def stream(self, request: SolveInput) -> AsyncIterator[pb.SolveEvent]:
        """Run a strategy, yielding its progress: started, text, probe, decision, ..., then result."""
        async for event in self.stub.SolveStream(_request(request), timeout=self.timeout_s):
            yield event

    async def get(self, request_id: str) -> pb.SolveResponse:
        """The state of a request started earlier: running (with its partial result) or finished."""
        return await self.stub.GetSolve(pb.GetSolveRequest(request_id=request_id), timeout=self.timeout_s)

    async def cancel(self, request_id: str) -> pb.CancelSolveResponse:
        """Stop a running request (its partial result is kept); `cancelled` is false when it had finished."""
        return await self.stub.CancelSolve(pb.CancelSolveRequest(request_id=request_id), timeout=self.timeout_s)

    async def batch(self, request: pb.SolveBatchRequest) -> AsyncIterator[pb.SolveEvent]:
        """Spread a budget over a batch of questions, yielding started, one question event per question as soon
        as it is final, then the result with the batch summary."""
        async for event in self.stub.SolveBatch(request, timeout=self.timeout_s):
            yield event

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.close()
