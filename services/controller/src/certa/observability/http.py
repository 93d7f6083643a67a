"""The HTTP door by the OpenTelemetry HTTP semantic conventions: one SERVER span per request and the
`http.server.request.duration` histogram.

The span is named `{method} {route}` (`POST /v1/chat/completions`; just the method when no route matched) and
carries `http.request.method`, `url.scheme`, `url.path`, `http.route`, `http.response.status_code`,
`server.address`, `server.port`, `network.protocol.version`, `client.address` and `user_agent.original`. A 5xx
answer is an error (`error.type` the status code, as the conventions say); so is a streamed answer that failed after
its 200 was sent (`error.type` the error's class). A request the client left is not an error: `certa.cancelled`.
`certa.request_id` is the id of the request it ran (the response's `x-request-id`).

The histogram is labelled by `http.request.method`, `http.route`, `http.response.status_code`, `url.scheme` and
`error.type`. Its buckets are the conventions' advice extended to ten minutes, since a reasoning request runs for
seconds to minutes (the advice stops at 10 s).

OpenTelemetry's aiohttp server instrumentation is not used: its releases pin `opentelemetry-instrumentation` one
pre-release behind the gRPC instrumentation Certa uses, it patches `aiohttp.web.Application` process-wide with a
global meter, and it reports the stable attribute names only under `OTEL_SEMCONV_STABILITY_OPT_IN`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from opentelemetry import metrics
from opentelemetry.trace import Span, Status, StatusCode
from opentelemetry.util.types import AttributeValue

# The methods the conventions know; any other is reported as `_OTHER` (with the original kept on the span).
KNOWN_METHODS = frozenset({"CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "QUERY", "TRACE"})
OTHER_METHOD = "_OTHER"
DURATION_BUCKETS_S = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 30, 60, 120, 300, 600,
)  # fmt: skip


@dataclass(frozen=True)
class HttpRequestInfo:
    """What the door knows of a request when it arrives (`route` is "" when no route matched)."""

    method: str
    route: str
    path: str
    scheme: str
    server_address: str
    server_port: int
    protocol_version: str
    client_address: str
    user_agent: str

    @property
    def known_method(self) -> str:
        return self.method if self.method in KNOWN_METHODS else OTHER_METHOD

    @property
    def span_name(self) -> str:
        return f"{self.known_method} {self.route}" if self.route else self.known_method

    def span_attributes(self) -> dict[str, AttributeValue]:
        attributes: dict[str, AttributeValue] = {
            "http.request.method": self.known_method,
            "url.scheme": self.scheme,
            "url.path": self.path,
        }
        if self.known_method != self.method:
            attributes["http.request.method_original"] = self.method
        optional: dict[str, AttributeValue | None] = {
            "http.route": self.route,
            "server.address": self.server_address,
            "server.port": self.server_port,
            "network.protocol.version": self.protocol_version,
            "client.address": self.client_address,
            "user_agent.original": self.user_agent,
        }
        attributes.update({key: value for key, value in optional.items() if value})
        return attributes

    def metric_attributes(self) -> dict[str, AttributeValue]:
        attributes: dict[str, AttributeValue] = {"http.request.method": self.known_method, "url.scheme": self.scheme}
        if self.route:
            attributes["http.route"] = self.route
        return attributes


@dataclass
class HttpServerCall:
    """One request's SERVER span while it runs; the door reports the answer through it."""

    span: Span
    started: float
    status_code: int | None = None  # None: no response was sent (the client left first)
    failure: str | None = None  # the error a response that began as a success ended with
    cancelled: bool = False
    request_id: str = ""  # Certa's id of the request it ran, if it ran one
    duration_s: float | None = None

    def finish(self) -> float:
        """Stop the clock (idempotent) and return the request's duration."""
        if self.duration_s is None:
            self.duration_s = time.perf_counter() - self.started
        return self.duration_s

    @property
    def error_type(self) -> str | None:
        if self.status_code is not None and self.status_code >= 500:
            return str(self.status_code)
        return self.failure


class HttpServerMetrics:
    def __init__(self, meter: metrics.Meter) -> None:
        self._duration = meter.create_histogram(
            "http.server.request.duration",
            unit="s",
            description="Duration of HTTP server requests",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS_S,
        )

    def record(self, request: HttpRequestInfo, call: HttpServerCall) -> None:
        attributes = request.metric_attributes()
        if call.status_code is not None:
            attributes["http.response.status_code"] = call.status_code
        if call.error_type is not None:
            attributes["error.type"] = call.error_type
        self._duration.record(call.finish(), attributes)


def end_span(call: HttpServerCall) -> None:
    """The answer's attributes and status on the span (its end is the caller's)."""
    span = call.span
    if call.status_code is not None:
        span.set_attribute("http.response.status_code", call.status_code)
    if call.request_id:
        span.set_attribute("certa.request_id", call.request_id)
    if call.cancelled:
        span.set_attribute("certa.cancelled", True)
    error_type = call.error_type
    if error_type is not None:
        span.set_attribute("error.type", error_type)
        span.set_status(Status(StatusCode.ERROR, error_type))
