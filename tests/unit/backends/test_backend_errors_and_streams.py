"""Error mapping for both adapters, incremental detokenisation and server-sent-event parsing."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import grpc
import pytest

from certa.backends.incremental_detokenizer import IncrementalDetokenizer
from certa.backends.openai.sse import sse_data
from certa.backends.openai.wire import completion_sampling, error_message, http_error
from certa.backends.triton.errors import response_error, rpc_error
from certa.core.errors import BackendError, BackendUnavailable
from certa.core.types import SamplingParams

pytestmark = pytest.mark.unit
URL = "triton://10.0.0.5:8001"


def rpc(code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details=details)


@pytest.mark.parametrize(
    ("code", "details", "kind", "rejected"),
    [
        (grpc.StatusCode.UNAVAILABLE, "failed to connect to all addresses", BackendUnavailable, False),
        (grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded", BackendUnavailable, False),
        (grpc.StatusCode.NOT_FOUND, "Request for unknown model: 'x' is not found", BackendUnavailable, False),
        (grpc.StatusCode.INVALID_ARGUMENT, "inference request batch-size must be <= 64", BackendError, True),
        (grpc.StatusCode.INTERNAL, "out of memory", BackendError, False),
    ],
)
def test_rpc_errors_map_onto_the_error_tree(
    code: grpc.StatusCode, details: str, kind: type[BackendError], rejected: bool
) -> None:
    error = rpc_error("local", URL, "ModelConfig for 'x'", rpc(code, details))
    assert type(error) is kind
    assert error.rejected_input is rejected
    assert "'local'" in str(error) and URL in str(error) and details in str(error)


@pytest.mark.parametrize(
    ("message", "kind", "rejected"),
    [
        ("Request for unknown model: 'ensemble' is not found", BackendUnavailable, False),
        ("Request for unknown model: 'ensemble' has no available versions", BackendUnavailable, False),
        ("unexpected inference input 'seed' for model 'ensemble'", BackendError, True),
        (
            "expected 3 inputs but got 2 inputs for model 'x'. missing required input(s) ['max_tokens']",
            BackendError,
            True,
        ),
        ("Prompt length (5000) exceeds maximum input length (4096).", BackendError, True),
        ("invalid value for text_input", BackendError, True),
        ("Encountered an error in forwardAsync function: CUDA error", BackendError, False),
    ],
)
def test_error_responses_map_onto_the_error_tree(message: str, kind: type[BackendError], rejected: bool) -> None:
    error = response_error("local", URL, "ensemble", message, ["text_input", "max_tokens"])
    assert type(error) is kind
    assert error.rejected_input is rejected
    assert "'local'" in str(error) and message in str(error)


@pytest.mark.parametrize(
    ("status", "kind", "rejected"),
    [
        (400, BackendError, True),
        (422, BackendError, True),
        (404, BackendUnavailable, False),
        (429, BackendUnavailable, False),
        (500, BackendError, False),
        (503, BackendUnavailable, False),
    ],
)
def test_http_errors_map_onto_the_error_tree(status: int, kind: type[BackendError], rejected: bool) -> None:
    error = http_error("oai", "http://h/v1/completions", status, b'{"error": {"message": "nope"}}')
    assert type(error) is kind
    assert error.rejected_input is rejected
    assert "'oai'" in str(error) and f"HTTP {status}: nope" in str(error)


def test_error_bodies_are_reduced_to_their_message() -> None:
    assert error_message(b'{"object": "error", "message": "max_tokens too large"}') == "max_tokens too large"
    assert error_message(b'{"error": "bad prompt"}') == "bad prompt"
    assert error_message(b"upstream connect error") == "upstream connect error"


def test_completion_sampling_sends_only_values_that_change_sampling() -> None:
    assert completion_sampling(SamplingParams(seed=3)) == {"temperature": 0.0, "seed": 3}
    sampled = SamplingParams(temperature=0.6, top_p=0.9, top_k=40, frequency_penalty=0.2, repetition_penalty=1.05)
    assert completion_sampling(sampled) == {
        "temperature": 0.6,
        "top_p": 0.9,
        "top_k": 40,
        "frequency_penalty": 0.2,
        "repetition_penalty": 1.05,
    }


def byte_level_decoder() -> tuple[IncrementalDetokenizer, list[Sequence[Sequence[int]]]]:
    """A detokeniser over byte tokens (id = byte value) that drops a leading space, like SentencePiece does."""
    calls: list[Sequence[Sequence[int]]] = []

    async def decode_many(sequences: Sequence[Sequence[int]]) -> list[str]:
        calls.append(sequences)
        return [bytes(sequence).decode("utf-8", errors="replace").removeprefix(" ") for sequence in sequences]

    return IncrementalDetokenizer(decode_many), calls


@pytest.mark.asyncio
async def test_detokenising_holds_back_incomplete_characters() -> None:
    detokenizer, calls = byte_level_decoder()
    euro = list("€".encode())  # three ids for one character
    pieces = [await detokenizer.push(ids) for ids in ([ord("a")], euro[:1], euro[1:2], euro[2:], [ord("b")])]
    assert pieces == ["a", "", "", "€", "b"]
    assert await detokenizer.flush() == ""
    assert all(len(call) == 2 for call in calls)  # each step is one call decoding two windows


@pytest.mark.asyncio
async def test_detokenising_keeps_spaces_a_tokeniser_drops_at_a_sequence_start() -> None:
    detokenizer, _ = byte_level_decoder()
    text = "".join([await detokenizer.push(list(word.encode())) for word in ("The", " answer", " is", " 18")])
    assert text == "The answer is 18"


@pytest.mark.asyncio
async def test_flush_releases_a_truncated_character_at_the_end() -> None:
    detokenizer, _ = byte_level_decoder()
    assert await detokenizer.push([ord("x"), *list("€".encode())[:2]]) == ""
    assert await detokenizer.flush() == "x\ufffd"


async def lines(*items: str) -> AsyncIterator[str]:
    for item in items:
        yield item


@pytest.mark.asyncio
async def test_sse_events_yield_their_data_until_done() -> None:
    stream = lines(
        ": keep-alive",
        "event: completion",
        'data: {"a": 1}',
        "",
        "data: first line",
        "data:second line",
        "id: 7",
        "",
        "data: [DONE]",
        "",
        'data: {"after": "done"}',
        "",
    )
    assert [payload async for payload in sse_data(stream)] == ['{"a": 1}', "first line\nsecond line"]


@pytest.mark.asyncio
async def test_an_unterminated_last_event_still_counts() -> None:
    assert [payload async for payload in sse_data(lines('data: {"b": 2}'))] == ['{"b": 2}']
