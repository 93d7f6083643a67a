"""Triton failures mapped onto Certa's error tree.

* The server cannot be reached, or the model is unknown / not ready -> `BackendUnavailable`.
* The server refused the request itself (gRPC INVALID_ARGUMENT, or an error naming an input or a length
  limit) -> `BackendError(rejected_input=True)`.
* Anything else the server reports, e.g. a failure mid-generation -> `BackendError`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import grpc

from certa.core.errors import BackendError, BackendUnavailable

_UNREACHABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}
_REFUSED = {grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED}
_MODEL_MISSING = re.compile(r"unknown model|is not found|is not ready|no available versions|not loaded", re.I)
_INPUT_REJECTED = re.compile(
    r"inference input|required input|input length|prompt length|exceed|max_tokens|request_output_len", re.I
)


def rpc_error(backend: str, url: str, what: str, error: grpc.aio.AioRpcError) -> BackendError:
    """The error for a failed gRPC call; `what` says which call (e.g. "ModelConfig for 'ensemble'")."""
    code, details = error.code(), error.details() or ""
    if code in _UNREACHABLE:
        return BackendUnavailable(backend, f"cannot reach Triton at {url} ({what}): {code.name} {details}".rstrip())
    if code in _REFUSED:  # the details may quote what was sent: not repeated
        return BackendUnavailable(backend, f"Triton at {url} refused Certa's credentials ({what}): {code.name}")
    if code == grpc.StatusCode.NOT_FOUND or _MODEL_MISSING.search(details):
        return BackendUnavailable(backend, f"Triton at {url}: {what}: {details}")
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return BackendError(backend, f"Triton at {url} rejected {what}: {details}", rejected_input=True)
    return BackendError(backend, f"Triton at {url}: {what} failed: {code.name} {details}".rstrip())


def response_error(backend: str, url: str, model: str, message: str, inputs: Iterable[str]) -> BackendError:
    """The error for an error response the server streamed back for a request to `model`."""
    if _MODEL_MISSING.search(message):
        return BackendUnavailable(backend, f"model {model!r} at Triton {url}: {message}")
    names = "|".join(re.escape(name) for name in inputs)
    if _INPUT_REJECTED.search(message) or (names and re.search(rf"\b({names})\b", message)):
        return BackendError(backend, f"model {model!r} rejected the request: {message}", rejected_input=True)
    return BackendError(backend, f"model {model!r} failed: {message}")
