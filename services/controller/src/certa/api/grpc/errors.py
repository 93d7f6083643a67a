"""Domain errors to gRPC statuses, in one place, applied to every method by one interceptor.

An interrupted solve carries its partial result as a `certa.v1.SolveResult` detail of the rich status
(`grpc-status-details-bin`), so a client keeps the text, tokens and probes reached before the failure.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from certa.api.grpc.access import note_status
from certa.api.grpc.mapping import report_to_proto
from certa.api.status_codes import status_code
from certa.core.errors import (
    CertaError,
    InvalidArgument,
    QuotaExceeded,
    SolveInterrupted,
)

log = logging.getLogger(__name__)


def rich_status(error: CertaError) -> grpc.Status:
    code = status_code(error)
    status = status_pb2.Status(code=code.value[0], message=str(error))
    if isinstance(error, SolveInterrupted) and error.partial is not None:
        detail = any_pb2.Any()
        detail.Pack(report_to_proto(error.partial))
        status.details.append(detail)
    if isinstance(error, QuotaExceeded) and error.retry_after_s is not None:
        retry = error_details_pb2.RetryInfo()
        retry.retry_delay.FromMilliseconds(max(int(error.retry_after_s * 1000), 1))
        detail = any_pb2.Any()
        detail.Pack(retry)
        status.details.append(detail)
    return rpc_status.to_status(status)


class ErrorMappingInterceptor(grpc.aio.ServerInterceptor):
    """Translate `CertaError` to its status; anything else becomes INTERNAL with a generic message."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = handler_call_details.method
        # Requests arrive as bytes and are decoded inside the wrapper, so a body that does not decode is
        # INVALID_ARGUMENT like any other bad input (gRPC's own decoding would answer UNKNOWN).
        decode = handler.request_deserializer or (lambda raw: raw)
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                _wrap_unary(handler.unary_unary, method, decode),
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                _wrap_stream(handler.unary_stream, method, decode),
                response_serializer=handler.response_serializer,
            )
        return handler


async def _abort(context: grpc.aio.ServicerContext, method: str, error: Exception) -> None:
    if isinstance(error, CertaError):
        code = status_code(error)
        note_status(code)
        context.set_code(code)  # seen by wrappers of the context (the gRPC server span's status code)
        await context.abort_with_status(rich_status(error))
    note_status(grpc.StatusCode.INTERNAL)
    log.exception("unexpected error in %s", method, exc_info=error)
    await context.abort(grpc.StatusCode.INTERNAL, "internal error; the server log has the details")


def _decoded(decode: Callable[[bytes], Any], raw: bytes, method: str) -> Any:
    try:
        return decode(raw)
    except DecodeError as error:
        raise InvalidArgument("request", f"is not a valid message for {method}: {error}") from None


def _wrap_unary(behaviour: Callable[..., Any], method: str, decode: Callable[[bytes], Any]) -> Callable[..., Any]:
    async def wrapped(raw: bytes, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await behaviour(_decoded(decode, raw, method), context)
        except Exception as error:
            if isinstance(error, grpc.aio.AbortError):
                raise
            await _abort(context, method, error)

    return wrapped


def _wrap_stream(
    behaviour: Callable[..., AsyncIterator[Any]], method: str, decode: Callable[[bytes], Any]
) -> Callable[..., AsyncIterator[Any]]:
    async def wrapped(raw: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        try:
            async for response in behaviour(_decoded(decode, raw, method), context):
                yield response
        except Exception as error:
            if isinstance(error, grpc.aio.AbortError):
                raise
            await _abort(context, method, error)

    return wrapped
