"""The `certa.v1.ReasoningService` servicer: authenticate, validate, run, map back. Errors are mapped by the
interceptor.

Every call is authenticated (`certa.api.auth`); the caller's tenant namespaces request ids, so a tenant never sees
another's requests (their ids answer NOT_FOUND). A request whose client chose its `request_id` keeps running when
the client disconnects (it can be found again with `GetSolve`, from any replica); a request with a server-assigned id is
cancelled, since nobody could ever collect its result. A client's W3C `traceparent` metadata makes the request's
span a child of the client's.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import grpc

from certa.api.auth import Authenticator
from certa.api.grpc.errors import ErrorMappingInterceptor
from certa.api.grpc.mapping import followed_to_proto, view_to_response
from certa.api.validation import validate, validate_batch
from certa.config import Settings
from certa.observability.telemetry import Telemetry
from certa.service import RequestView, SolveService
from certa.store.requests.port import RequestKey
from certa.v1 import reasoning_pb2 as pb
from certa.v1 import reasoning_pb2_grpc as pb_grpc

CLIENT_DEADLINE_MARGIN_S = 0.25


class ReasoningServicer(pb_grpc.ReasoningServiceServicer):
    def __init__(
        self,
        service: SolveService,
        authenticator: Authenticator,
        settings: Settings,
        telemetry: Telemetry | None = None,
    ) -> None:
        self._service = service
        self._auth = authenticator
        self._settings = settings
        self._telemetry = telemetry or Telemetry.disabled()

    def _tenant(self, context: grpc.aio.ServicerContext) -> str:
        return self._auth.identify(context.invocation_metadata(), context.auth_context()).tenant

    async def _start(
        self, request: pb.SolveRequest | pb.SolveBatchRequest, context: grpc.aio.ServicerContext
    ) -> RequestView:
        tenant = self._tenant(context)
        request_id = request.request_id or uuid.uuid4().hex
        if isinstance(request, pb.SolveBatchRequest):
            spec = validate_batch(request, self._settings, request_id)
        else:
            spec = validate(request, self._settings, request_id)
        trace_context = self._telemetry.extract(context.invocation_metadata())
        remaining = context.time_remaining()
        # Finish a little before the client gives up, so it still receives the partial result.
        client_deadline_s = remaining - CLIENT_DEADLINE_MARGIN_S if remaining is not None else None
        view = await self._service.submit(
            spec,
            tenant,
            idempotent=bool(request.request_id),
            trace_context=trace_context,
            client_deadline_s=client_deadline_s,
        )
        if not request.request_id:
            context.add_done_callback(lambda _: self._service.abandon(view.key))
        return view

    async def Solve(self, request: pb.SolveRequest, context: grpc.aio.ServicerContext) -> pb.SolveResponse:  # noqa: N802
        view = await self._start(request, context)
        return view_to_response(await self._service.wait(view.key))

    async def SolveStream(  # noqa: N802
        self, request: pb.SolveRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.SolveEvent]:
        async for event in self._stream(request, context):
            yield event

    async def SolveBatch(  # noqa: N802
        self, request: pb.SolveBatchRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.SolveEvent]:
        async for event in self._stream(request, context):
            yield event

    async def _stream(
        self, request: pb.SolveRequest | pb.SolveBatchRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.SolveEvent]:
        view = await self._start(request, context)
        request_id = view.key.request_id
        yield pb.SolveEvent(
            request_id=request_id,
            started=pb.Started(strategy=view.strategy, backend=view.backend, model=view.model),
        )
        async for event in self._service.follow(view.key):
            yield followed_to_proto(request_id, event)

    async def GetSolve(self, request: pb.GetSolveRequest, context: grpc.aio.ServicerContext) -> pb.SolveResponse:  # noqa: N802
        view = await self._service.describe(RequestKey(self._tenant(context), request.request_id))
        return view_to_response(view)

    async def CancelSolve(  # noqa: N802
        self, request: pb.CancelSolveRequest, context: grpc.aio.ServicerContext
    ) -> pb.CancelSolveResponse:
        cancelled = await self._service.cancel(RequestKey(self._tenant(context), request.request_id))
        return pb.CancelSolveResponse(request_id=request.request_id, cancelled=cancelled)


__all__ = ["ErrorMappingInterceptor", "ReasoningServicer"]
