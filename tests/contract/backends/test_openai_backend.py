"""The OpenAI-compatible adapter against a real HTTP server on a loopback port replaying recorded SSE streams.

The transcripts follow what vLLM and llama.cpp's server send for `POST /v1/completions` with `stream=true` and
`stream_options={"include_usage": true}`: text chunks, a finish reason, then (vLLM) a separate usage chunk or
(llama.cpp) usage on the finishing chunk, then `data: [DONE]`.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator, Generator
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web

from certa.backends.openai.backend import OpenAIBackend
from certa.backends.port import Delta
from certa.config import BackendSpec
from certa.core.commands import Command, generate
from certa.core.errors import BackendError, BackendUnavailable
from certa.core.exit.trace import answer_log_probs, geometric_mean_probability
from certa.core.types import (
    FinishReason,
    GenerationRequest,
    Outcome,
    Purpose,
    SamplingParams,
    Segment,
    StopReason,
    StrategyResult,
)
from certa.runtime.driver import Driver
from certa_triton_local.launcher import free_port

pytestmark = pytest.mark.integration

SERVED_MODEL = "scripted-7b"


def chunk(text: str | None = None, finish: str | None = None, usage: dict | None = None) -> dict[str, Any]:
    choices = [] if text is None else [{"index": 0, "text": text, "logprobs": None, "finish_reason": finish}]
    return {"id": "cmpl-1", "object": "text_completion", "model": SERVED_MODEL, "choices": choices, "usage": usage}


USAGE = {"prompt_tokens": 12, "completion_tokens": 4, "total_tokens": 16, "prompt_tokens_details": {"cached_tokens": 8}}
VLLM_LENGTH = [chunk(" per"), chunk(" day"), chunk("."), chunk(" She", "length"), chunk(usage=USAGE)]
LLAMA_CPP_STOP = [chunk("13"), chunk("}", "stop", usage={"prompt_tokens": 30, "completion_tokens": 2})]
NO_USAGE = [chunk(" per"), chunk(" day", "stop")]
FAILS_MID_STREAM = [chunk(" per"), {"error": {"object": "error", "message": "engine died", "code": 500}}]


def sse(chunks: list[dict[str, Any]]) -> list[str]:
    return [f"data: {json.dumps(item)}\n\n" for item in chunks] + ["data: [DONE]\n\n"]


@dataclass
class Reply:
    status: int = 200
    events: list[str] = field(default_factory=list)
    body: dict[str, Any] | None = None
    delay_s: float = 0.0


@dataclass
class RecordingServer:
    """Answers completions with queued replies and records what the adapter sent."""

    url: str = ""
    replies: list[Reply] = field(default_factory=list)
    completions: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    tokenize_calls: list[dict[str, Any]] = field(default_factory=list)
    has_tokenize: bool = True
    disconnected: asyncio.Event = field(default_factory=asyncio.Event)

    async def complete(self, request: web.Request) -> web.StreamResponse:
        self.completions.append(await request.json())
        self.headers.append(dict(request.headers))
        reply = self.replies.pop(0)
        if reply.status != 200:
            return web.json_response(reply.body, status=reply.status)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        try:
            for event in reply.events:
                await asyncio.sleep(reply.delay_s)
                await response.write(event.encode())
        except (ConnectionResetError, asyncio.CancelledError):
            self.disconnected.set()
            raise
        return response

    async def models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": SERVED_MODEL, "object": "model"}]})

    async def tokenize(self, request: web.Request) -> web.Response:
        if not self.has_tokenize:
            return web.json_response({"detail": "Not Found"}, status=404)
        body = await request.json()
        self.tokenize_calls.append(body)
        bos = [1] if body["add_special_tokens"] else []
        return web.json_response({"tokens": bos + [ord(char) for char in body["prompt"]]})


@pytest_asyncio.fixture
async def server() -> AsyncIterator[RecordingServer]:
    recording = RecordingServer()
    app = web.Application()
    app.router.add_post("/v1/completions", recording.complete)
    app.router.add_get("/v1/models", recording.models)
    app.router.add_post("/tokenize", recording.tokenize)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    recording.url = f"openai+http://127.0.0.1:{port}/v1"
    yield recording
    await runner.cleanup()


@pytest_asyncio.fixture
async def backend(server: RecordingServer) -> AsyncIterator[OpenAIBackend]:
    adapter = OpenAIBackend(BackendSpec("oai", server.url), connect_timeout_s=2.0)
    yield adapter
    await adapter.close()


async def collect(adapter: OpenAIBackend, request: GenerationRequest, model: str = "") -> list[Delta]:
    return [delta async for delta in adapter.stream(request, model)]


REQUEST = GenerationRequest(("Janet's ducks lay 16 eggs",), max_tokens=4, sampling=SamplingParams(seed=3))


@pytest.mark.asyncio
async def test_text_streams_and_the_usage_chunk_gives_the_counts(
    server: RecordingServer, backend: OpenAIBackend
) -> None:
    server.replies.append(Reply(events=sse(VLLM_LENGTH)))
    deltas = await collect(backend, REQUEST)

    assert [delta.text for delta in deltas] == [" per", " day", ".", " She", ""]
    assert [delta.tokens for delta in deltas] == [0, 0, 0, 0, 4]
    final = deltas[-1]
    assert (final.finish, final.prompt_tokens, final.cached_prompt_tokens) == (FinishReason.LENGTH, 12, 8)
    assert all(delta.finish is None and delta.token_ids is None for delta in deltas[:-1])


@pytest.mark.asyncio
async def test_usage_on_the_finishing_chunk_counts_too(server: RecordingServer, backend: OpenAIBackend) -> None:
    server.replies.append(Reply(events=sse(LLAMA_CPP_STOP)))
    deltas = await collect(backend, REQUEST)

    assert "".join(delta.text for delta in deltas) == "13}"
    assert sum(delta.tokens for delta in deltas) == 2
    assert (deltas[-1].finish, deltas[-1].prompt_tokens) == (FinishReason.STOP, 30)


@pytest.mark.asyncio
async def test_the_request_asks_for_streamed_usage_with_projected_sampling(
    server: RecordingServer, backend: OpenAIBackend
) -> None:
    server.replies.append(Reply(events=sse(VLLM_LENGTH)))
    request = GenerationRequest(("Q", Segment(" A")), max_tokens=4, sampling=SamplingParams(seed=3), stop=("}",))
    await collect(backend, request)

    assert server.completions == [
        {
            "model": SERVED_MODEL,
            "prompt": "Q A",
            "max_tokens": 4,
            "stream": True,
            "stream_options": {"include_usage": True},
            "temperature": 0.0,
            "seed": 3,
            "stop": ["}"],
        }
    ]


@pytest.mark.asyncio
async def test_metadata_is_sent_as_headers(server: RecordingServer) -> None:
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    adapter = OpenAIBackend(BackendSpec("oai", server.url), metadata_provider=lambda: [("traceparent", traceparent)])
    server.replies.append(Reply(events=sse(VLLM_LENGTH)))
    try:
        await collect(adapter, REQUEST, model="explicit-model")
    finally:
        await adapter.close()

    assert server.headers[0]["traceparent"] == traceparent
    assert server.completions[0]["model"] == "explicit-model"


@pytest.mark.asyncio
async def test_token_prompts_use_stored_ids_and_the_tokenize_endpoint(server: RecordingServer) -> None:
    adapter = OpenAIBackend(BackendSpec("oai", f"{server.url}?token_prompts=true&model=m"))
    prompt = ("Q:", Segment("<ignored>", (500, 501)), " A:")
    server.replies.extend([Reply(events=sse(VLLM_LENGTH)), Reply(events=sse(VLLM_LENGTH))])
    try:
        await collect(adapter, GenerationRequest(prompt, 4, SamplingParams()))
        await collect(adapter, GenerationRequest(prompt, 4, SamplingParams()))
    finally:
        await adapter.close()

    expected = [1, ord("Q"), ord(":"), 500, 501, ord(" "), ord("A"), ord(":")]
    assert [completion["prompt"] for completion in server.completions] == [expected, expected]
    assert [call["prompt"] for call in server.tokenize_calls] == ["Q:", " A:"]  # cached the second time


@pytest.mark.asyncio
async def test_token_prompts_fall_back_to_text_without_a_tokenize_endpoint(server: RecordingServer) -> None:
    server.has_tokenize = False
    adapter = OpenAIBackend(BackendSpec("oai", f"{server.url}?token_prompts=true"))
    server.replies.append(Reply(events=sse(VLLM_LENGTH)))
    try:
        await collect(adapter, GenerationRequest(("Q:", Segment(" x", (5,)), " A:"), 4, SamplingParams()))
    finally:
        await adapter.close()

    assert server.completions[0]["prompt"] == "Q: x A:"


@pytest.mark.asyncio
async def test_a_stream_without_usage_is_an_error_not_an_estimate(
    server: RecordingServer, backend: OpenAIBackend
) -> None:
    server.replies.append(Reply(events=sse(NO_USAGE)))
    with pytest.raises(BackendError, match="no token usage") as raised:
        await collect(backend, REQUEST)
    assert not raised.value.rejected_input


@pytest.mark.asyncio
async def test_an_error_event_mid_stream_follows_the_partial_deltas(
    server: RecordingServer, backend: OpenAIBackend
) -> None:
    server.replies.append(Reply(events=sse(FAILS_MID_STREAM)))
    received: list[Delta] = []
    with pytest.raises(BackendError, match="engine died") as raised:
        async for delta in backend.stream(REQUEST, ""):
            received.append(delta)
    assert [delta.text for delta in received] == [" per"]
    assert type(raised.value) is BackendError and not raised.value.rejected_input


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("status", "kind", "rejected"),
    [(400, BackendError, True), (500, BackendError, False), (404, BackendUnavailable, False)],
)
async def test_http_errors_map_onto_the_error_tree(
    server: RecordingServer, backend: OpenAIBackend, status: int, kind: type[BackendError], rejected: bool
) -> None:
    body = {"object": "error", "message": "This model's maximum context length is 4096 tokens", "code": status}
    server.replies.append(Reply(status=status, body=body))
    with pytest.raises(BackendError) as raised:
        await collect(backend, REQUEST)
    assert type(raised.value) is kind and raised.value.rejected_input is rejected
    assert "maximum context length" in str(raised.value) and "'oai'" in str(raised.value)


@pytest.mark.asyncio
async def test_an_unreachable_server_is_unavailable_naming_backend_and_url() -> None:
    port = free_port()
    adapter = OpenAIBackend(BackendSpec("offline", f"openai+http://127.0.0.1:{port}/v1?model=m"), connect_timeout_s=2)
    try:
        for attempt in (adapter.check_ready(), collect(adapter, REQUEST)):
            with pytest.raises(BackendUnavailable) as raised:
                await attempt
            assert "'offline'" in str(raised.value) and f"127.0.0.1:{port}" in str(raised.value)
    finally:
        await adapter.close()


@pytest.mark.asyncio
async def test_readiness_checks_the_configured_model(server: RecordingServer, backend: OpenAIBackend) -> None:
    await backend.check_ready()
    assert await backend.chat_template("") is None
    missing = OpenAIBackend(BackendSpec("oai", f"{server.url}?model=other-model"))
    try:
        with pytest.raises(BackendUnavailable, match="'other-model' is not served"):
            await missing.check_ready()
    finally:
        await missing.close()


@pytest.mark.asyncio
async def test_cancelling_the_consumer_closes_the_connection(server: RecordingServer, backend: OpenAIBackend) -> None:
    server.replies.append(Reply(events=sse([chunk(" tick")] * 200 + VLLM_LENGTH), delay_s=0.02))
    received: list[Delta] = []
    two_received = asyncio.Event()

    async def consume() -> None:
        async for delta in backend.stream(REQUEST, ""):
            received.append(delta)
            if len(received) == 2:
                two_received.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(two_received.wait(), timeout=10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.wait_for(server.disconnected.wait(), timeout=5)



def logprob_chunk(text: str, log_prob: float, finish: str | None = None, usage: dict | None = None) -> dict[str, Any]:
    item = chunk(text, finish, usage)
    item["choices"][0]["logprobs"] = {"tokens": [text], "token_logprobs": [log_prob], "top_logprobs": None}
    return item


PROBE_WITH_LOG_PROBS = [
    logprob_chunk("1", -0.01),
    logprob_chunk("8", -0.03),
    logprob_chunk("}", -0.2, "stop", usage={"prompt_tokens": 40, "completion_tokens": 3}),
]
PROBE = GenerationRequest(("Q \\boxed{",), 20, SamplingParams(), Purpose.PROBE, log_probs=True)


def one_call(request: GenerationRequest, outcomes: list[Outcome]) -> Generator[Command, Any, StrategyResult]:
    outcomes.append((yield from generate(request)))
    return StrategyResult("", StopReason.MODEL_FINISHED, "", ())


@pytest.mark.asyncio
async def test_a_probe_asks_for_log_probs_and_its_confidence_comes_from_them(
    server: RecordingServer, backend: OpenAIBackend
) -> None:
    server.replies.append(Reply(events=sse(PROBE_WITH_LOG_PROBS)))
    outcomes: list[Outcome] = []
    await Driver(backend, "", token_budget=64).run(one_call(PROBE, outcomes))

    assert server.completions[0]["logprobs"] == 1
    outcome = outcomes[0]
    assert outcome.text == "18}" and outcome.log_probs is not None
    assert outcome.log_probs.log_probs == (-0.01, -0.03, -0.2) and outcome.log_probs.text_ends == (1, 2, 3)
    # the answer "18" ends at character 2: its tokens are "1" and "8"
    assert geometric_mean_probability(answer_log_probs(outcome.log_probs, 2)) == pytest.approx(math.exp(-0.02))


@pytest.mark.asyncio
async def test_a_server_without_log_probs_leaves_the_outcome_without_them(
    server: RecordingServer, backend: OpenAIBackend
) -> None:
    server.replies.append(Reply(events=sse(LLAMA_CPP_STOP)))
    outcomes: list[Outcome] = []
    await Driver(backend, "", token_budget=64).run(one_call(PROBE, outcomes))

    assert server.completions[0]["logprobs"] == 1
    assert outcomes[0].text == "13}" and outcomes[0].log_probs is None


@pytest.mark.asyncio
async def test_paths_do_not_ask_for_log_probs(server: RecordingServer, backend: OpenAIBackend) -> None:
    server.replies.append(Reply(events=sse(VLLM_LENGTH)))
    deltas = await collect(backend, REQUEST)
    assert "logprobs" not in server.completions[0] and all(delta.log_probs is None for delta in deltas)
