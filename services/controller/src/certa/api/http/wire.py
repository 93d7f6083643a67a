"""Certa's results in OpenAI's wire shapes, built with the `openai` package's own types.

The `certa` extension field of a response (and of the last chunk of a stream) says what the strategy did: its stop
reason, the request id, path and probe tokens and the probes taken. `usage.completion_tokens` counts path **and**
probe tokens, since both are generated (and billed by any backend).
"""

from __future__ import annotations

import time
from typing import Any, Literal

from openai.types import Completion, CompletionChoice, CompletionUsage, Model
from openai.types.chat import ChatCompletion, ChatCompletionChunk, ChatCompletionMessage
from openai.types.chat.chat_completion import Choice
from openai.types.chat.chat_completion_chunk import Choice as ChunkChoice
from openai.types.chat.chat_completion_chunk import ChoiceDelta
from openai.types.completion_usage import PromptTokensDetails
from openai.types.shared import ErrorObject

from certa.api.http.catalogue import OfferedModel
from certa.api.http.thinking import split
from certa.core.report import SolveReport
from certa.core.types import StopReason, StrategyResult

OWNER = "certa"


def finish_reason(report: SolveReport) -> Literal["stop", "length"]:
    """`length` when the budget ran out, else `stop` (an early exit is the model's answer, decided early)."""
    return "length" if report.outcome.stop_reason is StopReason.BUDGET else "stop"


def usage(report: SolveReport) -> CompletionUsage:
    tokens = report.usage
    completion = tokens.path_tokens + tokens.probe_tokens
    return CompletionUsage(
        prompt_tokens=tokens.prompt_tokens,
        completion_tokens=completion,
        total_tokens=tokens.prompt_tokens + completion,
        prompt_tokens_details=PromptTokensDetails(cached_tokens=tokens.cached_prompt_tokens),
    )


def extension(report: SolveReport, request_id: str, strategy: str) -> dict[str, Any]:
    """The `certa` field: what the strategy decided (nothing but the stop reason of an interrupted run) and what the
    run spent."""
    outcome = report.outcome
    result = outcome if isinstance(outcome, StrategyResult) else None
    return {
        "request_id": request_id,
        "strategy": strategy,
        "stop_reason": str(outcome.stop_reason) if outcome.stop_reason is not None else None,
        "stop_detail": result.stop_detail if result is not None else "",
        "answer": result.answer if result is not None else "",
        "path_tokens": report.usage.path_tokens,
        "probe_tokens": report.usage.probe_tokens,
        "probes": len(report.probes),
        "samples": len(result.samples) if result is not None else 0,
        "tokens_saved_vs_budget": report.tokens_saved_vs_budget,
    }


def chat_completion(
    report: SolveReport, request_id: str, strategy: str, model: str, created: int, thinking: bool
) -> ChatCompletion:
    reasoning, reply = split(report.outcome.text, thinking)
    # `reasoning_content` and `certa` are extension fields: the openai types keep extra fields as given.
    message = ChatCompletionMessage.model_validate(
        {"role": "assistant", "content": reply, **({"reasoning_content": reasoning} if reasoning else {})}
    )
    response = ChatCompletion(
        id=chat_id(request_id),
        object="chat.completion",
        created=created,
        model=model,
        choices=[Choice(index=0, message=message, finish_reason=finish_reason(report), logprobs=None)],
        usage=usage(report),
    )
    return with_extension(response, extension(report, request_id, strategy))


def with_extension(value: ChatCompletion, certa: dict[str, Any]) -> ChatCompletion:
    return value.model_copy(update={"certa": certa})


def chat_chunk(
    request_id: str, model: str, created: int, delta: ChoiceDelta | None, **fields: Any
) -> ChatCompletionChunk:
    """One chunk of a chat stream: a delta (`finish_reason` on the last one), or no choice and `usage`."""
    choices = (
        [] if delta is None else [ChunkChoice(index=0, delta=delta, finish_reason=fields.pop("finish_reason", None))]
    )
    return ChatCompletionChunk(
        id=chat_id(request_id), object="chat.completion.chunk", created=created, model=model, choices=choices, **fields
    )


def completion(
    report: SolveReport, request_id: str, strategy: str, model: str, created: int, **fields: Any
) -> Completion:
    """A whole completion (or a stream's last choice chunk, with `text` ""); `certa` and `usage` unless given."""
    choice = CompletionChoice(
        index=0, text=fields.pop("text", report.outcome.text), finish_reason=finish_reason(report), logprobs=None
    )
    fields.setdefault("certa", extension(report, request_id, strategy))
    fields.setdefault("usage", usage(report))
    return Completion(
        id=completion_id(request_id), object="text_completion", created=created, model=model, choices=[choice], **fields
    )


def completion_chunk(request_id: str, model: str, created: int, text: str | None, **fields: Any) -> Completion:
    """A chunk of a completion stream: some text (no finish reason yet), or (`text` None) no choice and `usage`."""
    # The type is made for whole responses: it requires a finish reason, which a stream's chunks do not have yet.
    choices = (
        []
        if text is None
        else [CompletionChoice.model_construct(index=0, text=text, finish_reason=None, logprobs=None)]
    )
    return Completion(
        id=completion_id(request_id), object="text_completion", created=created, model=model, choices=choices, **fields
    )


def completion_id(request_id: str) -> str:
    return f"cmpl-{request_id}"


def chat_id(request_id: str) -> str:
    return f"chatcmpl-{request_id}"


def model_list(models: list[OfferedModel], created: int | None = None) -> dict[str, Any]:
    created = int(time.time()) if created is None else created
    data = [Model(id=model.name, object="model", created=created, owned_by=OWNER) for model in models]
    return {"object": "list", "data": [item.model_dump(mode="json") for item in data]}


def error_body(message: str, kind: str, param: str | None, code: str | None, **extra: Any) -> dict[str, Any]:
    error = ErrorObject(message=message, type=kind, param=param, code=code, **extra)
    return {"error": error.model_dump(mode="json", exclude_unset=True)}


def dump(value: ChatCompletion | ChatCompletionChunk | Completion) -> dict[str, Any]:
    return value.model_dump(mode="json", exclude_unset=True)
