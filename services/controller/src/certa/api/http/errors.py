"""Domain errors as OpenAI error objects with the matching HTTP status (`certa.api.status_codes`).

`param` names the request parameter at fault in OpenAI's terms: the validator's field names (those of the gRPC
API) are translated (`token_budget` -> `max_tokens`, `strategy...` -> `certa.strategy...`). An interrupted solve
keeps its partial result in the error's `certa.partial`; a quota error says when to retry in `Retry-After`. The
error's gRPC code is noted for the request's access line (`certa.api.http.access`).
"""

from __future__ import annotations

import json
import math
from typing import Any

import grpc
from aiohttp import web

from certa.api.http.access import note_error
from certa.api.http.wire import error_body, extension
from certa.api.status_codes import http_status, status_code
from certa.core.errors import CertaError, InvalidArgument, Overloaded, QuotaExceeded, SolveInterrupted

_KINDS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    503: "service_unavailable_error",
    504: "timeout_error",
}

_FIELDS = {
    "token_budget": "max_tokens",
    "request_id": "Idempotency-Key",
    "sampling.temperature": "temperature",
    "sampling.top_p": "top_p",
    "sampling.presence_penalty": "presence_penalty",
    "sampling.frequency_penalty": "frequency_penalty",
    "sampling": "presence_penalty",  # penalties with a chunked path; frequency_penalty is the other one
    "backend": "model",
}


class BodyTooLarge(CertaError):
    """HTTP 413: the body is larger than the server reads (`Settings.http_max_body_bytes`)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the request body is larger than this server's limit of {limit} bytes")


class RequestCancelled(CertaError):
    """HTTP 409: the request was cancelled (gRPC CancelSolve) before its strategy decided; no answer to give."""

    def __init__(self) -> None:
        super().__init__("the request was cancelled before its strategy reached an answer")


def openai_param(field: str, prompt_param: str) -> str:
    """The request parameter a validator field stands for; `prompt_param` is `messages` or `prompt`."""
    if field in ("question", "raw_prompt", "chat template"):
        return prompt_param
    if field.startswith(("strategy", "deadline")):
        return f"certa.{field}"
    return _FIELDS.get(field, field)


def error_json(error: CertaError) -> dict[str, Any]:
    """The error object a stream ends with when its request fails after the response began."""
    body = error_response(error).body
    assert isinstance(body, bytes)
    return dict(json.loads(body))


def http_error(status: int, message: str, kind: str, param: str | None, code: str, **extra: Any) -> web.Response:
    return web.json_response(error_body(message, kind, param, code, **extra), status=status)


def grpc_code(error: CertaError) -> grpc.StatusCode:
    """The gRPC code of the outcome, for the access line and the request duration: the domain error's, and for
    the HTTP door's own errors the code gRPC answers the same fault with."""
    if isinstance(error, BodyTooLarge):
        return grpc.StatusCode.RESOURCE_EXHAUSTED  # as gRPC answers a message over its size limit
    if isinstance(error, RequestCancelled):
        return grpc.StatusCode.CANCELLED
    return status_code(error)


def error_response(error: CertaError, prompt_param: str = "messages") -> web.Response:
    note_error(grpc_code(error), error)
    if isinstance(error, BodyTooLarge):
        return http_error(413, str(error), _KINDS[413], None, "request_too_large")
    if isinstance(error, RequestCancelled):
        return http_error(409, str(error), _KINDS[409], None, "cancelled")
    status = http_status(error)
    extra: dict[str, Any] = {}
    if isinstance(error, SolveInterrupted) and error.partial is not None:
        partial = error.partial
        figures = {key: value for key, value in extension(partial, "", "").items() if value != ""}
        extra["certa"] = {"partial": {"text": partial.outcome.text, **figures}}
    param = openai_param(error.field, prompt_param) if isinstance(error, InvalidArgument) else None
    message = str(error)
    if isinstance(error, InvalidArgument) and param != error.field:
        message = f"{param}: {message.partition(': ')[2]}"
    response = http_error(
        status, message, _KINDS.get(status, "server_error"), param, status_code(error).name.lower(), **extra
    )
    if isinstance(error, Overloaded):
        retry_after_s = error.retry_after_s if isinstance(error, QuotaExceeded) else 1.0
        if retry_after_s is not None:
            response.headers["Retry-After"] = str(max(math.ceil(retry_after_s), 1))
    return response
