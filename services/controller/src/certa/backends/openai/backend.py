"""The OpenAI-compatible completions adapter (vLLM, SGLang, llama.cpp server, TensorRT-LLM's `trtllm-serve`).

Each generation is one `POST /completions` with `stream=true` and `stream_options={"include_usage": true}`,
read as server-sent events. Token counts come only from `usage` objects, which are cumulative for the call:
text chunks usually carry none (their deltas count 0 tokens) and the closing usage chunk gives the rest to the
final delta. A server that sends no usage at all is an error: Certa never estimates counts from text.
Deltas carry no token ids; the completions API does not return them. A request that wants log-probabilities
(probes) sends `logprobs: 1` and reads each chunk's `logprobs.token_logprobs`; a server that sends none leaves the
deltas without them (the strategy then decides on agreement only).
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from typing import Any

import httpx

from certa.backends.bounded_cache import BoundedCache
from certa.backends.call_metadata import MetadataProvider
from certa.backends.openai.options import OpenAIOptions
from certa.backends.openai.sse import sse_data
from certa.backends.openai.wire import (
    CREDENTIALS_REFUSED,
    FINISH_REASONS,
    Usage,
    chunk_log_probs,
    completion_sampling,
    http_error,
)
from certa.backends.port import Delta
from certa.backends.token_prompt import prompt_ids
from certa.config import BackendSpec
from certa.core.errors import BackendError, BackendUnavailable
from certa.core.types import GenerationRequest, PromptPiece, prompt_text

_NO_TOKENIZE_ENDPOINT = {404, 405, 501}


def _transport_error(backend: str, url: str, error: httpx.TransportError) -> BackendError:
    if isinstance(error, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)):
        return BackendUnavailable(backend, f"cannot reach {url}: {type(error).__name__} {error}".rstrip())
    return BackendError(backend, f"connection to {url} failed: {type(error).__name__} {error}".rstrip())


async def _completion_deltas(backend: str, url: str, payloads: AsyncIterator[str]) -> AsyncGenerator[Delta, None]:
    """Deltas from the streamed chunks of one completion; the last one has `finish` and the prompt counts."""
    usage: Usage | None = None
    counted = 0
    finish_reason: str | None = None
    async for payload in payloads:
        chunk: dict[str, Any] = json.loads(payload)
        if "error" in chunk or chunk.get("object") == "error":
            error = chunk.get("error", chunk)
            message = error.get("message", error) if isinstance(error, dict) else error
            raise BackendError(backend, f"{url} failed mid-stream: {message}")
        if chunk.get("usage"):
            usage = Usage.parse(chunk["usage"])
        text = "".join(choice.get("text") or "" for choice in chunk.get("choices") or ())
        for choice in chunk.get("choices") or ():
            finish_reason = choice.get("finish_reason") or finish_reason
        if text:  # counts reported with no text (the closing usage chunk) go to the final delta
            tokens = (usage.completion_tokens - counted) if usage else 0
            counted += tokens
            yield Delta(text, tokens, log_probs=chunk_log_probs(chunk))
    if usage is None:
        raise BackendError(
            backend, f"{url} reported no token usage (stream_options.include_usage); Certa never estimates counts"
        )
    if finish_reason not in FINISH_REASONS:
        raise BackendError(backend, f"{url} ended the completion with finish_reason {finish_reason!r}")
    yield Delta(
        "",
        usage.completion_tokens - counted,
        finish=FINISH_REASONS[finish_reason],
        prompt_tokens=usage.prompt_tokens,
        cached_prompt_tokens=usage.cached_prompt_tokens,
    )


class OpenAIBackend:
    """An OpenAI-compatible server. `metadata_provider` pairs are sent as HTTP headers (e.g. `traceparent`)."""

    def __init__(
        self,
        spec: BackendSpec,
        *,
        connect_timeout_s: float = 10.0,
        metadata_provider: MetadataProvider | None = None,
    ) -> None:
        self._name = spec.name
        self.options = OpenAIOptions.from_spec(spec)
        self._client = httpx.AsyncClient(timeout=httpx.Timeout(None, connect=connect_timeout_s))
        self._metadata_provider = self.options.credentials.with_call_metadata(metadata_provider)
        self._served_model: str | None = None
        self._token_cache: BoundedCache[tuple[str, bool], tuple[int, ...]] = BoundedCache()
        self._tokenize_available = True

    @property
    def name(self) -> str:
        return self._name

    @property
    def default_model(self) -> str:
        return self.options.model

    def _headers(self) -> dict[str, str]:
        return dict(self._metadata_provider()) if self._metadata_provider else {}

    async def _request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            return await self._client.request(method, url, headers=self._headers(), **kwargs)
        except httpx.TransportError as error:
            raise _transport_error(self._name, url, error) from error

    async def _served_models(self) -> list[str]:
        url = f"{self.options.base_url}/models"
        response = await self._request("GET", url)
        if response.status_code in CREDENTIALS_REFUSED:
            raise http_error(self._name, url, response.status_code, b"")
        if response.status_code != 200:
            raise BackendUnavailable(self._name, f"GET {url} answered HTTP {response.status_code}")
        return [str(entry.get("id")) for entry in response.json().get("data") or ()]

    async def _model_name(self, model: str) -> str:
        if model or self.options.model:
            return model or self.options.model
        if self._served_model is None:
            served = await self._served_models()
            if not served:
                raise BackendUnavailable(self._name, f"{self.options.base_url} serves no models")
            self._served_model = served[0]
        return self._served_model

    async def _tokenize(self, text: str, model: str, add_special: bool) -> tuple[int, ...] | None:
        """Ids from the server's `/tokenize` (request fields for vLLM/SGLang and llama.cpp); None without one."""
        cached = self._token_cache.get((text, add_special))
        if cached is not None or not self._tokenize_available:
            return cached
        url = self.options.tokenize_url
        body = {"model": model, "prompt": text, "add_special_tokens": add_special}
        response = await self._request("POST", url, json=body | {"content": text, "add_special": add_special})
        if response.status_code in _NO_TOKENIZE_ENDPOINT:
            self._tokenize_available = False
            return None
        if response.status_code != 200:
            raise http_error(self._name, url, response.status_code, response.content)
        ids = tuple(int(token) for token in response.json()["tokens"])
        self._token_cache.put((text, add_special), ids)
        return ids

    async def _prompt(self, prompt: tuple[PromptPiece, ...], model: str) -> str | list[int]:
        """Token ids when `token_prompts` is set and all text could be tokenised by the server, else text."""
        if not self.options.token_prompts:
            return prompt_text(prompt)
        ids = await prompt_ids(prompt, lambda text, at_start: self._tokenize(text, model, add_special=at_start))
        return prompt_text(prompt) if ids is None else ids

    async def stream(self, request: GenerationRequest, model: str) -> AsyncIterator[Delta]:
        model_name = await self._model_name(model)
        body: dict[str, Any] = {
            "model": model_name,
            "prompt": await self._prompt(request.prompt, model_name),
            "max_tokens": request.max_tokens,
            "stream": True,
            "stream_options": {"include_usage": True},
            **completion_sampling(request.sampling),
        }
        if request.stop:
            body["stop"] = list(request.stop)
        if request.log_probs:
            body["logprobs"] = 1
        url = f"{self.options.base_url}/completions"
        try:
            async with self._client.stream("POST", url, json=body, headers=self._headers()) as response:
                if response.status_code >= 400:
                    raise http_error(self._name, url, response.status_code, await response.aread())
                async with aclosing(_completion_deltas(self._name, url, sse_data(response.aiter_lines()))) as deltas:
                    async for delta in deltas:
                        yield delta
        except httpx.TransportError as error:
            raise _transport_error(self._name, url, error) from error

    async def check_ready(self) -> None:
        served = await self._served_models()
        if self.options.model and self.options.model not in served:
            raise BackendUnavailable(
                self._name, f"model {self.options.model!r} is not served at {self.options.base_url} (serves {served})"
            )

    async def served_models(self) -> frozenset[str]:
        return frozenset(await self._served_models())

    async def chat_template(self, model: str) -> str | None:
        """None: the OpenAI API has no standard way to publish a model's chat template."""
        return None

    async def close(self) -> None:
        await self._client.aclose()
