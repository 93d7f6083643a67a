"""Which gRPC status code, and which HTTP status, each domain error stands for."""

from __future__ import annotations

import grpc

from certa.api.jwks import KeysUnavailable
from certa.core.errors import (
    BackendError,
    BackendUnavailable,
    CertaError,
    Conflict,
    CorruptState,
    DeadlineExceeded,
    InvalidArgument,
    LeaseLost,
    NotFound,
    Overloaded,
    ShuttingDown,
    SolveInterrupted,
    StoreUnavailable,
    Unauthenticated,
)


def status_code(error: CertaError) -> grpc.StatusCode:
    if isinstance(error, SolveInterrupted):
        if isinstance(error, DeadlineExceeded):
            return grpc.StatusCode.DEADLINE_EXCEEDED
        return status_code(error.cause) if error.cause is not None else grpc.StatusCode.UNAVAILABLE
    if isinstance(error, InvalidArgument):
        return grpc.StatusCode.INVALID_ARGUMENT
    if isinstance(error, Unauthenticated):
        return grpc.StatusCode.UNAUTHENTICATED
    if isinstance(error, NotFound):
        return grpc.StatusCode.NOT_FOUND
    if isinstance(error, Conflict):
        return grpc.StatusCode.ALREADY_EXISTS
    if isinstance(error, Overloaded):
        return grpc.StatusCode.RESOURCE_EXHAUSTED
    if isinstance(error, BackendUnavailable | ShuttingDown | StoreUnavailable | LeaseLost | KeysUnavailable):
        return grpc.StatusCode.UNAVAILABLE
    if isinstance(error, CorruptState):
        return grpc.StatusCode.DATA_LOSS
    if isinstance(error, BackendError):
        return grpc.StatusCode.INVALID_ARGUMENT if error.rejected_input else grpc.StatusCode.UNAVAILABLE
    return grpc.StatusCode.INTERNAL


_HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}


def http_status(error: CertaError) -> int:
    """The HTTP status of the error's gRPC code (as gRPC-HTTP gateways map them); 500 for anything else."""
    return _HTTP_STATUS.get(status_code(error), 500)


_GRPC_CODE = {status: code for code, status in _HTTP_STATUS.items()} | {405: grpc.StatusCode.UNIMPLEMENTED}


def grpc_code_of_http(status: int) -> grpc.StatusCode:
    """The gRPC code an HTTP answer stands for when no domain error says more (a route not found, a wrong method,
    readiness): OK for 2xx, the table above read backwards, INTERNAL for other 5xx, UNKNOWN otherwise."""
    if 200 <= status < 300:
        return grpc.StatusCode.OK
    if status in _GRPC_CODE:
        return _GRPC_CODE[status]
    return grpc.StatusCode.INTERNAL if status >= 500 else grpc.StatusCode.UNKNOWN
