"""The `certa.v1.ReasoningService` servicer: validate, run, map back. Errors are mapped by the interceptor.

A request whose client chose its `request_id` keeps running when the client disconnects (it can be found again
with `GetSolve`); a request with a server-assigned id is cancelled, since nobody could ever collect its result.
A client's W3C `traceparent` metadata makes the request's span a child of the client's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from certa.api.errors import ErrorMappingInterceptor
from certa.api.mapping import event_to_proto, report_to_proto
from certa.service import Run, RunStatus, SolveService
from certa.telemetry import Telemetry
from certa.v1 import reasoning_pb2 as pb
from certa.v1 import reasoning_pb2_grpc as pb_grpc

_STATUS = {
    RunStatus.RUNNING: pb.SOLVE_STATUS_RUNNING,
    RunStatus.SUCCEEDED: pb.SOLVE_STATUS_SUCCEEDED,
    RunStatus.FAILED: pb.SOLVE_STATUS_FAILED,
    RunStatus.CANCELLED: pb.SOLVE_STATUS_CANCELLED,
}


def run_to_response(run: Run) -> pb.SolveResponse:
    created = Timestamp()
    created.FromDatetime(run.created_at)
    report = run.partial
    return pb.SolveResponse(
        request_id=run.request_id,
        status=_STATUS[run.status],
        result=report_to_proto(report) if report is not None else None,
        error=str(run.error) if run.error is not None else "",
        created_at=created,
        strategy=run.strategy,
    )


CLIENT_DEADLINE_MARGIN_S = 0.25


class ReasoningServicer(pb_grpc.ReasoningServiceServicer):
    def __init__(self, service: SolveService, telemetry: Telemetry | None = None) -> None:
        self._service = service
        self._telemetry = telemetry or Telemetry.disabled()

    async def _start(self, request: pb.SolveRequest, context: grpc.aio.ServicerContext) -> Run:
        trace_context = self._telemetry.extract(context.invocation_metadata())
        remaining = context.time_remaining()
        # Finish a little before the client gives up, so it still receives the partial result.
        client_deadline_s = remaining - CLIENT_DEADLINE_MARGIN_S if remaining is not None else None
        run = await self._service.submit(request, trace_context, client_deadline_s)
        if not request.request_id:
            context.add_done_callback(lambda _: run.cancel.set() if not run.done else None)
        return run

    async def Solve(self, request: pb.SolveRequest, context: grpc.aio.ServicerContext) -> pb.SolveResponse:  # noqa: N802
        run = await self._start(request, context)
        await run.wait()
        if run.error is not None:
            raise run.error
        return run_to_response(run)

    async def SolveStream(  # noqa: N802
        self, request: pb.SolveRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.SolveEvent]:
        run = await self._start(request, context)
        yield pb.SolveEvent(
            request_id=run.request_id,
            started=pb.Started(strategy=run.strategy, backend=run.backend, model=run.model),
        )
        async for event in run.follow():
            yield event_to_proto(run.request_id, event)
        if run.error is not None:
            raise run.error
        assert run.report is not None
        yield pb.SolveEvent(request_id=run.request_id, result=report_to_proto(run.report))

    async def GetSolve(self, request: pb.GetSolveRequest, context: grpc.aio.ServicerContext) -> pb.SolveResponse:  # noqa: N802
        return run_to_response(self._service.get(request.request_id))

    async def CancelSolve(  # noqa: N802
        self, request: pb.CancelSolveRequest, context: grpc.aio.ServicerContext
    ) -> pb.CancelSolveResponse:
        return pb.CancelSolveResponse(
            request_id=request.request_id, cancelled=self._service.cancel(request.request_id)
        )


__all__ = ["ErrorMappingInterceptor", "ReasoningServicer", "run_to_response"]
