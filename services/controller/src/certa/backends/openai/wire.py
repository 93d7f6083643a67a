"""The OpenAI `/v1/completions` wire format: sampling projection, finish reasons, token usage, HTTP errors."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from certa.core.errors import BackendError, BackendUnavailable
from certa.core.types import FinishReason, SamplingParams

FINISH_REASONS = {"stop": FinishReason.STOP, "length": FinishReason.LENGTH}
_RETRYABLE_STATUS = {404, 408, 429, 503}  # unknown model / endpoint, timeouts, overload: the server, not the input


def completion_sampling(sampling: SamplingParams) -> dict[str, Any]:
    """Sampling fields of a completions request. `top_k` and `repetition_penalty` are extensions that vLLM,
    SGLang and llama.cpp accept; like the other fields they are sent only when they change sampling."""
    fields: dict[str, Any] = {"temperature": sampling.temperature}
    if not sampling.greedy:
        if sampling.top_p != 1.0:
            fields["top_p"] = sampling.top_p
        if sampling.top_k > 0:
            fields["top_k"] = sampling.top_k
    if sampling.seed is not None:
        fields["seed"] = sampling.seed
    if sampling.presence_penalty != 0.0:
        fields["presence_penalty"] = sampling.presence_penalty
    if sampling.frequency_penalty != 0.0:
        fields["frequency_penalty"] = sampling.frequency_penalty
    if sampling.repetition_penalty != 1.0:
        fields["repetition_penalty"] = sampling.repetition_penalty
    return fields


def chunk_log_probs(chunk: dict[str, Any]) -> tuple[float, ...] | None:
    """The log-probs of a streamed chunk's tokens (`choices[].logprobs.token_logprobs`), None when it has none."""
    values: list[float] = []
    for choice in chunk.get("choices") or ():
        log_probs = choice.get("logprobs")
        token_log_probs = log_probs.get("token_logprobs") if isinstance(log_probs, dict) else None
        if not isinstance(token_log_probs, list):
            return None
        values += [float(value) for value in token_log_probs if value is not None]
    return tuple(values) if values else None


@dataclass(frozen=True)
class Usage:
    """Token counts from a `usage` object; cumulative for the call so far."""

    completion_tokens: int
    prompt_tokens: int
    cached_prompt_tokens: int

    @classmethod
    def parse(cls, usage: dict[str, Any]) -> Usage:
        details = usage.get("prompt_tokens_details") or {}
        return cls(
            completion_tokens=int(usage.get("completion_tokens") or 0),
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            cached_prompt_tokens=int(details.get("cached_tokens") or 0),
        )


def error_message(body: bytes) -> str:
    """The human-readable part of an error body (`{"error": {"message": ...}}`, `{"message": ...}` or text)."""
    try:
        payload = json.loads(body)
    except ValueError:
        return body.decode(errors="replace").strip()[:500]
    if isinstance(payload, dict):
        error = payload.get("error", payload)
        if isinstance(error, dict) and "message" in error:
            return str(error["message"])
        if isinstance(error, str):
            return error
    return json.dumps(payload)[:500]


CREDENTIALS_REFUSED = (401, 403)


def http_error(backend: str, url: str, status: int, body: bytes) -> BackendError:
    """401/403 (credentials refused), 404/408/429/503 -> unavailable; other 4xx -> the input was rejected; 5xx -> a
    server error."""
    if status in CREDENTIALS_REFUSED:  # the body may quote what was sent: not repeated
        return BackendUnavailable(backend, f"{url} refused Certa's credentials (HTTP {status}); see api_key_file")
    message = f"{url} answered HTTP {status}: {error_message(body)}"
    if status in _RETRYABLE_STATUS:
        return BackendUnavailable(backend, message)
    return BackendError(backend, message, rejected_input=400 <= status < 500)
