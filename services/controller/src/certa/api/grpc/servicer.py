"""The `certa.v1.ReasoningService` servicer: authenticate, validate, run, map back. Errors are mapped by the
interceptor.

Every call is authenticated (`certa.api.auth`); the caller's tenant namespaces request ids, so a tenant never sees
another's requests (their ids answer NOT_FOUND). A request whose client chose its `request_id` keeps running when
the client disconnects (it can be found again with `GetSolve`, from any replica); a request with a server-assigned id is
cancelled, since nobody could ever collect its result. The request's span is a child of the call's gRPC server span
(itself a child of the client's W3C `traceparent`). The servicer names the call's tenant, request and strategy for
its log lines (`certa.observability.logs`) and its access line (`certa.api.grpc.access`).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import grpc

from certa.api.auth import Authenticator
from certa.api.grpc.access import current_call
from certa.api.grpc.errors import ErrorMappingInterceptor
from certa.api.grpc.mapping import followed_to_proto, view_to_response
from certa.api.validation import validate, validate_batch, validate_request_id
from certa.config import Settings
from certa.core.strategies import strategy_name
from certa.observability.logs import bind_request
from certa.observability.telemetry import Telemetry
from certa.service import Finished, RequestView, SolveService
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

    def _tenant(self, context: grpc.aio.ServicerContext, request_id: str = "") -> str:
        record = current_call()
        tenant = self._auth.identify(
            context.invocation_metadata(), context.auth_context(), rpc=record.method if record else ""
        ).tenant
        bind_request(tenant=tenant, request_id=request_id)
        if record is not None:
            record.tenant, record.request_id = tenant, request_id
        return tenant

    async def _start(
        self, request: pb.SolveRequest | pb.SolveBatchRequest, context: grpc.aio.ServicerContext
    ) -> RequestView:
        request_id = request.request_id or uuid.uuid4().hex
        tenant = self._tenant(context, request_id)
        if isinstance(request, pb.SolveBatchRequest):
            spec = validate_batch(request, self._settings, request_id)
        else:
            spec = validate(request, self._settings, request_id)
        record = current_call()
        if record is not None:
            record.strategy = str(strategy_name(spec.strategy))
        trace_context = self._telemetry.current_context()
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
        return view_to_response(_counted(await self._service.wait(view.key)))

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
            if isinstance(event, Finished) and event.result is not None:
                _count_tokens(event.result.usage.path_tokens + event.result.usage.probe_tokens)
            yield followed_to_proto(request_id, event)

    async def GetSolve(self, request: pb.GetSolveRequest, context: grpc.aio.ServicerContext) -> pb.SolveResponse:  # noqa: N802
        request_id = validate_request_id(request.request_id)  # before it reaches a log line
        view = await self._service.describe(RequestKey(self._tenant(context, request_id), request_id))
        return view_to_response(view)

    async def CancelSolve(  # noqa: N802
        self, request: pb.CancelSolveRequest, context: grpc.aio.ServicerContext
    ) -> pb.CancelSolveResponse:
        request_id = validate_request_id(request.request_id)
        cancelled = await self._service.cancel(RequestKey(self._tenant(context, request_id), request_id))
        return pb.CancelSolveResponse(request_id=request.request_id, cancelled=cancelled)


def _count_tokens(tokens: int) -> None:
    record = current_call()
    if record is not None:
        record.tokens = tokens


def _counted(view: RequestView) -> RequestView:
    """The view, with its generated tokens noted for the access line."""
    if view.result is not None:
        _count_tokens(view.result.usage.path_tokens + view.result.usage.probe_tokens)
    return view


__all__ = ["ErrorMappingInterceptor", "ReasoningServicer"]
