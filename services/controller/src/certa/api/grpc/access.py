"""One access line and the duration metrics per RPC.

The interceptor opens a `CallRecord` for each call; the servicer fills in what it learns (tenant, request id,
strategy, tokens) and the error interceptor the status it answered with. When the call ends, one `certa.access` log
line carries method, tenant, request id, status code, duration and tokens, and `Telemetry.rpc` records
`rpc.server.duration` and `certa.request.duration`. Health checks (probed every few seconds) are measured but not
logged.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import grpc

from certa.observability.logs import ACCESS_LOGGER
from certa.observability.telemetry import Telemetry

access_log = logging.getLogger(ACCESS_LOGGER)

UNLOGGED_SERVICES = ("/grpc.health.v1.Health/",)


@dataclass
class CallRecord:
    """What one RPC did, as far as its access line tells."""

    method: str
    tenant: str = ""
    request_id: str = ""
    strategy: str = ""
    tokens: int | None = None  # generated (path + probe), when the call returned a result
    status: grpc.StatusCode | None = None  # set when the call failed with a mapped error


_current: ContextVar[CallRecord | None] = ContextVar("certa_call_record", default=None)


def current_call() -> CallRecord | None:
    """The record of the RPC the current task serves (None outside one)."""
    return _current.get()


def note_status(status: grpc.StatusCode) -> None:
    """The status the current call is about to be answered with (called by the error interceptor)."""
    record = _current.get()
    if record is not None:
        record.status = status


class AccessInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, telemetry: Telemetry) -> None:
        self._telemetry = telemetry

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = handler_call_details.method
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._unary(handler.unary_unary, method),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._stream(handler.unary_stream, method),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler

    def _unary(self, behaviour: Callable[..., Any], method: str) -> Callable[..., Any]:
        async def wrapped(request: Any, context: grpc.aio.ServicerContext) -> Any:
            record = CallRecord(method)
            _current.set(record)
            started = time.perf_counter()
            status = grpc.StatusCode.UNKNOWN
            try:
                response = await behaviour(request, context)
                status = grpc.StatusCode.OK
                return response
            except asyncio.CancelledError:
                status = grpc.StatusCode.CANCELLED
                raise
            finally:
                self._finish(record, status, time.perf_counter() - started)

        return wrapped

    def _stream(self, behaviour: Callable[..., AsyncIterator[Any]], method: str) -> Callable[..., AsyncIterator[Any]]:
        async def wrapped(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            record = CallRecord(method)
            _current.set(record)
            started = time.perf_counter()
            status = grpc.StatusCode.UNKNOWN
            try:
                async for response in behaviour(request, context):
                    yield response
                status = grpc.StatusCode.OK
            except (asyncio.CancelledError, GeneratorExit):
                status = grpc.StatusCode.CANCELLED
                raise
            finally:
                self._finish(record, status, time.perf_counter() - started)

        return wrapped

    def _finish(self, record: CallRecord, status: grpc.StatusCode, duration_s: float) -> None:
        """`status` is what the call's own code saw; a mapped error's status, when there was one, wins."""
        if status is not grpc.StatusCode.OK and record.status is not None:
            status = record.status
        elif status is grpc.StatusCode.UNKNOWN:
            status = grpc.StatusCode.INTERNAL
        self._telemetry.rpc.record(record.method, status, duration_s, record.strategy)
        if record.method.startswith(UNLOGGED_SERVICES):
            return
        access_log.info(
            "%s %s %.3fs",
            record.method,
            status.name,
            duration_s,
            extra={
                "fields": {
                    "event": "access",
                    "rpc.method": record.method,
                    "tenant": record.tenant,
                    "request_id": record.request_id,
                    "strategy": record.strategy,
                    "status": status.name,
                    "duration_s": round(duration_s, 6),
                    "tokens": record.tokens,
                }
            },
        )
