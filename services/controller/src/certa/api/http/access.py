"""Telemetry of the HTTP door, as `certa.api.grpc.access` is for the gRPC one: one middleware per request.

It opens the request's SERVER span (`Telemetry.http_server`, by the HTTP conventions) and an `HttpCall` that the
handlers fill in (tenant, request id, strategy, tokens) and the error mapping completes (`note_error`). When the
request ends (for a streamed answer: when its stream ends), it records `certa.request.duration` with `rpc` the
call's `METHOD route`, and writes one `certa.access` line inside the span (so it carries the trace ids). Health
checks (`/healthz`, `/readyz`) and requests to no route are measured but not logged.

The access line's `status` is the gRPC code name the outcome maps to (`OK`, `INVALID_ARGUMENT`, `UNAVAILABLE`, ...)
as over gRPC; `http.response.status_code` is what was sent. A stream that failed after its 200 went out says 200
there and the failure's code in `status`.
"""

from __future__ import annotations

import asyncio
import logging
from contextvars import ContextVar
from dataclasses import dataclass

import grpc
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from certa.api.status_codes import grpc_code_of_http
from certa.observability.http import HttpRequestInfo
from certa.observability.logs import ACCESS_LOGGER
from certa.observability.telemetry import Telemetry

access_log = logging.getLogger(ACCESS_LOGGER)

UNLOGGED_ROUTES = ("/healthz", "/readyz")


@dataclass
class HttpCall:
    """What one HTTP request did, as far as its access line tells."""

    method: str
    route: str  # "" when no route matched
    tenant: str = ""
    request_id: str = ""
    strategy: str = ""
    tokens: int | None = None  # generated (path + probe), when the request returned a result
    status_code: int | None = None  # the HTTP status sent, once the response began
    error: grpc.StatusCode | None = None  # the code of the error the request was answered with, if any
    failure: str | None = None  # that error's class

    @property
    def name(self) -> str:
        """`METHOD route`: the access line's `rpc.method` and the request duration's `rpc` label."""
        return f"{self.method} {self.route}"

    def status(self, cancelled: bool) -> grpc.StatusCode:
        if self.error is not None:
            return self.error
        if cancelled:
            return grpc.StatusCode.CANCELLED
        return grpc_code_of_http(self.status_code) if self.status_code is not None else grpc.StatusCode.UNKNOWN


_current: ContextVar[HttpCall | None] = ContextVar("certa_http_call", default=None)


def current_call() -> HttpCall | None:
    """The record of the HTTP request the current task serves (None outside one)."""
    return _current.get()


def note_error(code: grpc.StatusCode, error: Exception) -> None:
    """The error the current request is being answered with (called by the error mapping)."""
    call = _current.get()
    if call is not None:
        call.error, call.failure = code, type(error).__name__


async def note_response(request: web.Request, response: web.StreamResponse) -> None:
    """`on_response_prepare`: the status a response was sent with (a streamed one's, before its body)."""
    call = _current.get()
    if call is not None:
        call.status_code = response.status


def access_middleware(telemetry: Telemetry) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        info = request_info(request)
        call = HttpCall(info.method, info.route)
        _current.set(call)
        cancelled = False
        with telemetry.http_server(info, request.headers) as span:
            try:
                response = await handler(request)
                call.status_code = response.status
                return response
            except asyncio.CancelledError:
                cancelled = True
                raise
            finally:
                span.status_code = call.status_code
                if call.status_code is not None and call.status_code < 400:
                    span.failure = call.failure  # an error sent inside a stream that began as a success
                span.request_id = call.request_id
                _finish(telemetry, call, call.status(cancelled), span.finish())

    return middleware


def _finish(telemetry: Telemetry, call: HttpCall, status: grpc.StatusCode, duration_s: float) -> None:
    if not call.route:
        return
    telemetry.rpc.request(call.name, call.strategy, status.name, duration_s)
    if call.route in UNLOGGED_ROUTES:
        return
    access_log.info(
        "%s %s %.3fs",
        call.name,
        status.name,
        duration_s,
        extra={
            "fields": {
                "event": "access",
                "rpc.method": call.name,
                "http.request.method": call.method,
                "http.route": call.route,
                "http.response.status_code": call.status_code,
                "tenant": call.tenant,
                "request_id": call.request_id,
                "strategy": call.strategy,
                "status": status.name,
                "duration_s": round(duration_s, 6),
                "tokens": call.tokens,
            }
        },
    )


def request_info(request: web.Request) -> HttpRequestInfo:
    resource = request.match_info.route.resource
    host, port = host_and_port(request.host, request.scheme)
    return HttpRequestInfo(
        method=request.method,
        route=resource.canonical if resource is not None else "",
        path=request.path,
        scheme=request.scheme,
        server_address=host,
        server_port=port,
        protocol_version=f"{request.version.major}.{request.version.minor}",
        client_address=request.remote or "",
        user_agent=request.headers.get("User-Agent", ""),
    )


def host_and_port(host: str, scheme: str) -> tuple[str, int]:
    """`Host` as (address, port); the scheme's default port when it names none."""
    name, colon, port = host.rpartition(":")
    if colon and port.isdigit() and not name.endswith(":"):  # not the tail of a bare IPv6 address
        return name.strip("[]"), int(port)
    return host.strip("[]"), 443 if scheme == "https" else 80
