"""Strict parsing of OpenAI `chat/completions` and `completions` requests into a `certa.v1.SolveRequest`.

Every parameter is either honoured or refused with 400 naming it; none is silently ignored. The `certa` extension
object carries Certa's own knobs in the JSON form of the gRPC API's messages (`strategy`, `deadline`), so both
doors accept the same ones and `certa.api.validation` checks them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from google.protobuf import json_format

from certa.api.http.catalogue import ModelCatalogue, OfferedModel, default_temperature
from certa.core.errors import InvalidArgument
from certa.v1 import reasoning_pb2 as pb

SAMPLING = ("temperature", "top_p", "seed", "presence_penalty", "frequency_penalty")
COMMON = {"model", "max_tokens", "stream", "stream_options", "n", "certa", *SAMPLING}
CHAT = COMMON | {"messages", "max_completion_tokens", "logprobs"}
COMPLETION = COMMON | {"prompt", "echo", "best_of", "logprobs"}
EXTENSION = {"strategy", "deadline"}
ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}
MESSAGE_KEYS = {"role", "content"}


@dataclass(frozen=True)
class Message:
    role: str
    content: str


@dataclass(frozen=True)
class ParsedRequest:
    """A request's model and its gRPC form; a chat's prompt is rendered from `messages` once its template is known
    (one user message is a question, as in the gRPC API)."""

    model: OfferedModel
    request: pb.SolveRequest
    messages: tuple[Message, ...]  # empty for a completion (its prompt is `request.raw_prompt`)
    stream: bool
    include_usage: bool

    @property
    def single_question(self) -> bool:
        return len(self.messages) == 1 and self.messages[0].role == "user"


def load_body(body: bytes) -> dict[str, Any]:
    try:
        document = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InvalidArgument("body", f"is not valid JSON: {error}") from None
    if not isinstance(document, dict):
        raise InvalidArgument("body", "must be a JSON object")
    return document


def parse_chat(body: Mapping[str, Any], catalogue: ModelCatalogue) -> ParsedRequest:
    _refuse_unsupported(body, CHAT)
    if body.get("logprobs"):
        raise InvalidArgument("logprobs", "is not supported: Certa returns no token log probabilities")
    if "max_tokens" in _given(body) and "max_completion_tokens" in _given(body):
        raise InvalidArgument("max_completion_tokens", "set max_tokens or max_completion_tokens, not both")
    messages = _messages(body.get("messages"))
    parsed = _common(
        body, catalogue, "max_completion_tokens" if "max_completion_tokens" in _given(body) else "max_tokens"
    )
    return ParsedRequest(parsed.model, parsed.request, messages, parsed.stream, parsed.include_usage)


def parse_completion(body: Mapping[str, Any], catalogue: ModelCatalogue) -> ParsedRequest:
    _refuse_unsupported(body, COMPLETION)
    if body.get("echo"):
        raise InvalidArgument("echo", "is not supported: the prompt is not repeated in the completion")
    if body.get("best_of") not in (None, 1):
        raise InvalidArgument("best_of", "must be 1: for several samples use certa.strategy.majority_vote")
    if body.get("logprobs") is not None:
        raise InvalidArgument("logprobs", "is not supported: Certa returns no token log probabilities")
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1:
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise InvalidArgument("prompt", "must be one string (lists of prompts and token ids are not supported)")
    parsed = _common(body, catalogue, "max_tokens")
    parsed.request.raw_prompt = prompt
    return parsed


def _given(body: Mapping[str, Any]) -> set[str]:
    """Parameters present with a value: an explicit null means the default, as in OpenAI's API."""
    return {key for key, value in body.items() if value is not None}


def _refuse_unsupported(body: Mapping[str, Any], supported: set[str]) -> None:
    for key in sorted(_given(body) - supported):
        raise InvalidArgument(key, f"is not supported by Certa; supported parameters: {', '.join(sorted(supported))}")


def _common(body: Mapping[str, Any], catalogue: ModelCatalogue, max_tokens_name: str) -> ParsedRequest:
    name = body.get("model")
    if not isinstance(name, str) or not name:
        raise InvalidArgument("model", "required: the name of a model GET /v1/models lists")
    model = catalogue.get(name)
    if body.get("n") not in (None, 1):
        raise InvalidArgument(
            "n",
            "must be 1: Certa returns the one answer its strategy decided; to draw several samples and vote, set "
            "certa.strategy.majority_vote or self_consistency",
        )
    request = _extension(body.get("certa"))
    if not request.HasField("strategy"):
        request.strategy.CopyFrom(model.strategy)
    request.backend = model.backend
    request.model = model.model
    max_tokens = _typed(body, max_tokens_name, int)
    if max_tokens is not None:
        if not 1 <= max_tokens <= model.context_tokens:
            raise InvalidArgument(
                max_tokens_name,
                f"must be in [1, {model.context_tokens}] (the context of model {name!r}), got {max_tokens}",
            )
        request.token_budget = max_tokens
    temperature = _typed(body, "temperature", float)
    request.sampling.temperature = default_temperature(request.strategy) if temperature is None else temperature
    for key in ("top_p", "presence_penalty", "frequency_penalty"):
        value = _typed(body, key, float)
        if value is not None:
            setattr(request.sampling, key, value)
    seed = _typed(body, "seed", int)
    if seed is not None:
        if not 0 <= seed < 2**63:
            raise InvalidArgument("seed", f"must be in [0, 2^63), got {seed}")
        request.sampling.seed = seed
    stream = _typed(body, "stream", bool) or False
    options = body.get("stream_options")
    include_usage = False
    if options is not None:
        if not stream:
            raise InvalidArgument("stream_options", "only applies with stream: true")
        if not isinstance(options, dict) or set(options) - {"include_usage"}:
            raise InvalidArgument("stream_options", "must be an object with include_usage only")
        include_usage = _typed(options, "include_usage", bool, "stream_options.include_usage") or False
    return ParsedRequest(model, request, (), stream, include_usage)


def _typed(body: Mapping[str, Any], key: str, kind: type, name: str = "") -> Any:
    value = body.get(key)
    if value is None:
        return None
    # JSON has one number type: an integral float is an int, an int is a float; a bool is neither.
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise InvalidArgument(name or key, f"must be {_KINDS[kind]}, got {json.dumps(value)[:40]}")
    return value


_KINDS = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def _messages(raw: Any) -> tuple[Message, ...]:
    if not isinstance(raw, list) or not raw:
        raise InvalidArgument("messages", "required: a non-empty list of {role, content}")
    messages = []
    for index, entry in enumerate(raw):
        field = f"messages[{index}]"
        if not isinstance(entry, dict):
            raise InvalidArgument(field, "must be an object with role and content")
        for key in sorted(_given(entry) - MESSAGE_KEYS):
            raise InvalidArgument(f"{field}.{key}", "is not supported (tools, names and audio are not)")
        role = entry.get("role")
        if role not in ROLES:
            raise InvalidArgument(f"{field}.role", f"must be one of {', '.join(ROLES)}, got {role!r}")
        messages.append(Message(ROLES[role], _content(entry.get("content"), f"{field}.content")))
    return tuple(messages)


def _content(raw: Any, field: str) -> str:
    if isinstance(raw, str):
        return raw
    if isinstance(raw, list):
        texts = []
        for index, part in enumerate(raw):
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise InvalidArgument(f"{field}[{index}]", "only text parts ({type: text, text}) are supported")
            texts.append(part["text"])
        return "".join(texts)
    raise InvalidArgument(field, "must be a string or a list of text parts")


_AT_PATH = re.compile(r'at "?SolveRequest\.([\w.]+?)"?\.?$', re.MULTILINE)
_FAILED_FIELD = re.compile(r"Failed to parse (\w+) field")
_NO_FIELD = re.compile(r'has no field named "(\w+)"')


def _extension(raw: Any) -> pb.SolveRequest:
    """The `certa` object: Certa's knobs, in the gRPC API's JSON form."""
    if raw is None:
        return pb.SolveRequest()
    if not isinstance(raw, dict):
        raise InvalidArgument("certa", f"must be an object with keys among {', '.join(sorted(EXTENSION))}")
    for key in sorted(set(raw) - EXTENSION):
        raise InvalidArgument(
            f"certa.{key}", f"is not a Certa extension field; accepted: {', '.join(sorted(EXTENSION))}"
        )
    try:
        return json_format.ParseDict(raw, pb.SolveRequest())
    except json_format.ParseError as error:
        raise InvalidArgument(_parse_error_param(str(error), raw), str(error).split("\n")[0]) from None


def _parse_error_param(message: str, raw: Mapping[str, Any]) -> str:
    """The parameter a protobuf JSON parse error is about, e.g. `certa.strategy.dynasor_cot.chunk_tokens`."""
    first = message.split("\n")[0]
    at = _AT_PATH.search(first.split(" Available Fields")[0])
    unknown = _NO_FIELD.search(first)
    if at:
        path = at.group(1).split(".") + ([unknown.group(1)] if unknown else [])
    else:  # the message names the fields it failed in, but not the oneof members between them: find the last one
        failed = _FAILED_FIELD.findall(first)
        path = _path_to(raw, failed[-1]) if failed else []
    return ".".join(["certa", *(_snake(name) for name in path)])


def _path_to(document: Any, key: str) -> list[str]:
    if isinstance(document, dict):
        for name, value in document.items():
            if name == key:
                return [name]
            below = _path_to(value, key)
            if below:
                return [name, *below]
    return []


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()
