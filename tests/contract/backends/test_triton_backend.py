"""The Triton adapter against a real `tritonserver` hosting the scripted TensorRT-LLM-shaped models.

Expected text comes from the same `ScriptedModel` the served models run, so every assertion is exact.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import jinja2
import pytest
import pytest_asyncio
from tritonclient.grpc.service_pb2 import ModelInferRequest

from certa.backends.port import Delta
from certa.backends.triton.backend import TritonBackend
from certa.backends.triton.rpc import ChannelTarget, TritonConnection
from certa.config import BackendSpec
from certa.core.errors import BackendError, BackendUnavailable
from certa.core.types import FinishReason, GenerationRequest, SamplingParams, Segment
from certa.testing.scripted_model import ScriptedModel, encode
from certa_triton_local.launcher import TritonServer, free_port

pytestmark = pytest.mark.integration

SCRIPT = ScriptedModel()
QUESTION = "Question: how much does Janet make every day?\nAnswer: Janet's ducks lay 16 eggs"
PROBE = "... Oh, I suddenly got the answer to the whole problem, **Final Answer**\n\n\\[ \\boxed{"
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

TEXT_MODES = {"ensemble": "?mode=text", "bls": "?mode=text&text_model=tensorrt_llm_bls", "tokens": "?mode=tokens"}
GENERATING_MODEL = {"ensemble": "ensemble", "bls": "tensorrt_llm_bls", "tokens": "tensorrt_llm"}
every_mode = pytest.mark.parametrize("mode", list(TEXT_MODES))

MakeBackend = Callable[..., TritonBackend]


def marked(text: str) -> tuple[str, str]:
    """A unique marker and `text` prefixed with it, to find this test's requests in the fixture's logs."""
    marker = f"<{uuid.uuid4().hex[:10]}>"
    return marker, f"{marker} {text}"


def records(log: Path, marker: str, model: str | None = None) -> list[dict]:
    lines = log.read_text().splitlines() if log.exists() else []
    found = [json.loads(line) for line in lines if marker in line]
    return [record for record in found if model is None or record["model"] == model]


async def collect(backend: TritonBackend, request: GenerationRequest, model: str = "") -> list[Delta]:
    return [delta async for delta in backend.stream(request, model)]


def text_of(deltas: list[Delta]) -> str:
    return "".join(delta.text for delta in deltas)


def ids_of(deltas: list[Delta]) -> list[int]:
    return [token for delta in deltas for token in delta.token_ids or ()]


@pytest_asyncio.fixture
async def make_backend(scripted_triton: TritonServer) -> AsyncIterator[MakeBackend]:
    created: list[TritonBackend] = []

    def make(query: str = "", name: str = "scripted", **kwargs: object) -> TritonBackend:
        spec = BackendSpec(name, f"triton://{scripted_triton.grpc_url}{query}")
        backend = TritonBackend(spec, connect_timeout_s=5.0, **kwargs)  # type: ignore[arg-type]
        created.append(backend)
        return backend

    yield make
    for backend in created:
        await backend.close()


@pytest.mark.asyncio
@every_mode
async def test_deltas_concatenate_to_the_script_with_reported_counts(make_backend: MakeBackend, mode: str) -> None:
    backend = make_backend(TEXT_MODES[mode])
    deltas = await collect(backend, GenerationRequest((QUESTION,), max_tokens=20, sampling=SamplingParams()))

    expected, _ = SCRIPT.completion(QUESTION, 20)
    assert text_of(deltas) == expected
    assert sum(delta.tokens for delta in deltas) == 20
    assert deltas[-1].finish is FinishReason.LENGTH
    assert all(delta.finish is None for delta in deltas[:-1])
    assert deltas[-1].prompt_tokens == len(QUESTION)
    if mode == "tokens":
        assert ids_of(deltas) == encode(expected)
        assert all(len(delta.token_ids or ()) == delta.tokens for delta in deltas)


@pytest.mark.asyncio
@every_mode
async def test_a_finished_script_is_stop_without_the_end_token(make_backend: MakeBackend, mode: str) -> None:
    backend = make_backend(TEXT_MODES[mode])
    deltas = await collect(backend, GenerationRequest((QUESTION,), max_tokens=1000, sampling=SamplingParams()))

    expected, ended = SCRIPT.completion(QUESTION, 1000)
    assert ended
    assert text_of(deltas) == expected
    assert sum(delta.tokens for delta in deltas) == len(expected)
    assert deltas[-1].finish is FinishReason.STOP
    if mode == "tokens":
        assert ids_of(deltas) == encode(expected)  # the end id the model emitted is stripped


@pytest.mark.asyncio
@every_mode
async def test_cached_prompt_tokens_are_reported_when_the_model_declares_them(
    make_backend: MakeBackend, mode: str
) -> None:
    backend = make_backend(TEXT_MODES[mode])
    _, question = marked(QUESTION)
    request = GenerationRequest((question,), max_tokens=3, sampling=SamplingParams())
    first = (await collect(backend, request))[-1]
    again = (await collect(backend, request))[-1]

    assert first.prompt_tokens == again.prompt_tokens == len(question)
    assert first.cached_prompt_tokens < len(question)
    assert again.cached_prompt_tokens == len(question)


@pytest.mark.asyncio
async def test_a_path_continued_from_its_ids_equals_one_long_call(
    make_backend: MakeBackend, scripted_request_log: Path
) -> None:
    backend = make_backend(TEXT_MODES["tokens"])
    marker, question = marked(QUESTION)
    whole = await collect(backend, GenerationRequest((question,), max_tokens=60, sampling=SamplingParams()))
    first = await collect(backend, GenerationRequest((question,), max_tokens=25, sampling=SamplingParams()))
    # The segment's text is deliberately wrong: only its ids may reach the model.
    segment = Segment(text="<not the generated text>", token_ids=tuple(ids_of(first)))
    second = await collect(backend, GenerationRequest((question, segment), max_tokens=35, sampling=SamplingParams()))

    assert ids_of(first) + ids_of(second) == ids_of(whole)
    assert text_of(first) + text_of(second) == text_of(whole)
    sent = records(scripted_request_log, marker, "tensorrt_llm")[-1]["input_ids"]
    assert sent == encode(question) + ids_of(first)


@pytest.mark.asyncio
async def test_token_mode_tokenises_each_text_piece_once(make_backend: MakeBackend, scripted_request_log: Path) -> None:
    backend = make_backend(TEXT_MODES["tokens"])
    marker, question = marked(QUESTION)
    path = Segment(" per day.", tuple(encode(" per day.")))
    for _ in range(3):
        await collect(backend, GenerationRequest((question, path, PROBE), max_tokens=8, sampling=SamplingParams()))

    tokenised = [record["queries"] for record in records(scripted_request_log, marker, "preprocessing")]
    assert tokenised == [[question]]


@pytest.mark.asyncio
@every_mode
async def test_probes_answer_with_the_latest_number(make_backend: MakeBackend, mode: str) -> None:
    backend = make_backend(TEXT_MODES[mode])
    path, _ = SCRIPT.completion(QUESTION, 60)
    prompt = (QUESTION, Segment(path, tuple(encode(path))), PROBE)
    deltas = await collect(backend, GenerationRequest(prompt, max_tokens=16, sampling=SamplingParams()))

    expected, _ = SCRIPT.completion(QUESTION + path + PROBE, 16)
    assert text_of(deltas) == expected == "wait, 13}"
    assert deltas[-1].finish is FinishReason.STOP


@pytest.mark.asyncio
@every_mode
async def test_the_seed_decides_votes_deterministically(
    make_backend: MakeBackend, scripted_request_log: Path, mode: str
) -> None:
    backend = make_backend(TEXT_MODES[mode])
    marker, prompt = marked("[[vote:A,B,C]] " + SCRIPT.script_template.split("\\boxed")[0])
    answers = []
    for seed in (0, 1, 2, 1):
        request = GenerationRequest((prompt,), max_tokens=20, sampling=SamplingParams(seed=seed))
        answers.append(text_of(await collect(backend, request)))

    assert answers == [SCRIPT.completion(prompt, 20, seed)[0] for seed in (0, 1, 2, 1)]
    assert [answer.split("{")[1][0] for answer in answers] == ["A", "B", "C", "B"]
    sent = records(scripted_request_log, marker, GENERATING_MODEL[mode])
    assert [record["seed"] for record in sent] == [0, 1, 2, 1]
    assert all("seed" in record["inputs"] and "random_seed" not in record["inputs"] for record in sent)


@pytest.mark.asyncio
@every_mode
async def test_greedy_sampling_is_sent_as_top_k_one(
    make_backend: MakeBackend, scripted_request_log: Path, mode: str
) -> None:
    backend = make_backend(TEXT_MODES[mode])
    marker, question = marked(QUESTION)
    await collect(backend, GenerationRequest((question,), max_tokens=4, sampling=SamplingParams(temperature=0.0)))

    (record,) = records(scripted_request_log, marker, GENERATING_MODEL[mode])
    assert record["top_k"] == 1
    assert "temperature" not in record["inputs"]


@pytest.mark.asyncio
@every_mode
async def test_stop_words_end_the_generation(make_backend: MakeBackend, mode: str) -> None:
    backend = make_backend(TEXT_MODES[mode])
    request = GenerationRequest((QUESTION,), max_tokens=200, sampling=SamplingParams(), stop=("= 13",))
    deltas = await collect(backend, request)

    full, _ = SCRIPT.completion(QUESTION, 200)
    assert text_of(deltas) == full[: full.index("= 13") + len("= 13")]
    assert deltas[-1].finish is FinishReason.STOP


@pytest.mark.asyncio
@pytest.mark.parametrize("mode", ["ensemble", "tokens"])
async def test_cancelling_the_consumer_cancels_the_model_request(
    make_backend: MakeBackend, scripted_cancel_log: Path, mode: str
) -> None:
    backend = make_backend(TEXT_MODES[mode])
    marker, prompt = marked("[[slow:0.05]] " + QUESTION)
    request = GenerationRequest((prompt,), max_tokens=500, sampling=SamplingParams())
    received: list[Delta] = []
    three_received = asyncio.Event()

    async def consume() -> None:
        async for delta in backend.stream(request, ""):
            received.append(delta)
            if len(received) == 3:
                three_received.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(three_received.wait(), timeout=20)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    for _ in range(100):
        if records(scripted_cancel_log, marker):
            break
        await asyncio.sleep(0.05)
    (cancelled,) = records(scripted_cancel_log, marker)
    assert cancelled["model"] == GENERATING_MODEL[mode]
    assert 3 <= cancelled["sent"] < 500


@pytest.mark.asyncio
@every_mode
async def test_a_failure_mid_stream_is_a_backend_error_after_the_partial_deltas(
    make_backend: MakeBackend, mode: str
) -> None:
    backend = make_backend(TEXT_MODES[mode])
    # QUESTION already holds 25 characters of the script, so a failure at path token 30 comes 5 tokens into this call.
    prompt = "[[fail-after:30]] " + QUESTION
    received: list[Delta] = []
    with pytest.raises(BackendError) as raised:
        async for delta in backend.stream(GenerationRequest((prompt,), 50, SamplingParams()), ""):
            received.append(delta)

    assert type(raised.value) is BackendError
    assert not raised.value.rejected_input
    assert "scripted failure after 5 tokens" in str(raised.value)
    assert "'scripted'" in str(raised.value)
    assert text_of(received) == SCRIPT.completion(prompt, 50)[0][:5]


@pytest.mark.asyncio
@every_mode
async def test_a_prompt_over_the_input_limit_is_a_rejected_input(make_backend: MakeBackend, mode: str) -> None:
    backend = make_backend(TEXT_MODES[mode])
    with pytest.raises(BackendError) as raised:
        await collect(backend, GenerationRequest(("x" * 5000,), max_tokens=5, sampling=SamplingParams()))

    assert raised.value.rejected_input
    assert "exceeds maximum input length" in str(raised.value)


@pytest.mark.asyncio
@pytest.mark.parametrize("query", ["", "?mode=text", "?mode=tokens"])
async def test_an_unreachable_server_is_unavailable_naming_backend_and_url(query: str) -> None:
    port = free_port()
    backend = TritonBackend(BackendSpec("offline", f"triton://127.0.0.1:{port}{query}"), connect_timeout_s=2.0)
    try:
        with pytest.raises(BackendUnavailable) as raised:
            await backend.check_ready()
        assert "'offline'" in str(raised.value) and f"127.0.0.1:{port}" in str(raised.value)
        with pytest.raises(BackendUnavailable) as raised:
            await collect(backend, GenerationRequest((QUESTION,), 5, SamplingParams()))
        assert "'offline'" in str(raised.value) and f"127.0.0.1:{port}" in str(raised.value)
    finally:
        await backend.close()


@pytest.mark.asyncio
async def test_a_stream_to_an_unreachable_server_is_unavailable() -> None:
    port = free_port()
    connection = TritonConnection("offline", ChannelTarget(f"127.0.0.1:{port}"), connect_timeout_s=2.0)
    try:
        with pytest.raises(BackendUnavailable, match=f"cannot reach Triton at triton://127.0.0.1:{port}"):
            async for _ in connection.stream(ModelInferRequest(model_name="ensemble")):
                pass
    finally:
        await connection.close()


@pytest.mark.asyncio
async def test_an_unknown_model_is_unavailable(make_backend: MakeBackend) -> None:
    backend = make_backend(TEXT_MODES["ensemble"])
    with pytest.raises(BackendUnavailable, match="no_such_model"):
        await collect(backend, GenerationRequest((QUESTION,), 5, SamplingParams()), "no_such_model")

    for query in ("?mode=text&text_model=no_such_model", "?mode=tokens&token_model=no_such_model"):
        with pytest.raises(BackendUnavailable, match="no_such_model"):
            await make_backend(query).check_ready()


@pytest.mark.asyncio
async def test_auto_mode_prefers_tokens_and_falls_back_to_text(make_backend: MakeBackend) -> None:
    request = GenerationRequest((QUESTION,), 5, SamplingParams())
    preferred = make_backend()
    await preferred.check_ready()
    assert await preferred.mode() == "tokens"
    assert ids_of(await collect(preferred, request)) == encode(SCRIPT.completion(QUESTION, 5)[0])

    fallback = make_backend("?postprocessing=no_such_model")
    await fallback.check_ready()
    assert await fallback.mode() == "text"
    deltas = await collect(fallback, request)
    assert text_of(deltas) == SCRIPT.completion(QUESTION, 5)[0]
    assert all(delta.token_ids is None for delta in deltas)


@pytest.mark.asyncio
async def test_the_chat_template_comes_from_the_model_config(make_backend: MakeBackend) -> None:
    backend = make_backend()
    template = await backend.chat_template("")

    assert template is not None
    rendered = jinja2.Template(template).render(
        messages=[{"role": "user", "content": "How many eggs?"}], add_generation_prompt=True
    )
    assert rendered == "<|im_start|>user\nHow many eggs?<|im_end|>\n<|im_start|>assistant\n"
    assert await backend.chat_template("tensorrt_llm_bls") is None


@pytest.mark.asyncio
@pytest.mark.parametrize("mode", ["ensemble", "tokens"])
async def test_call_metadata_reaches_the_server(
    make_backend: MakeBackend, scripted_request_log: Path, mode: str
) -> None:
    backend = make_backend(TEXT_MODES[mode], metadata_provider=lambda: [("traceparent", TRACEPARENT)])
    marker, question = marked(QUESTION)
    await collect(backend, GenerationRequest((question,), 3, SamplingParams()))

    seen = records(scripted_request_log, marker)
    assert {record["model"] for record in seen} >= {GENERATING_MODEL[mode]}
    assert all(record["parameters"].get("traceparent") == TRACEPARENT for record in seen)


@pytest.mark.asyncio
async def test_credentials_from_files_reach_the_server_as_call_metadata(
    make_backend: MakeBackend, scripted_request_log: Path, tmp_path: Path
) -> None:
    (tmp_path / "token").write_text("gateway-token-1\n")
    (tmp_path / "headers.json").write_text(json.dumps({"X-Certa-Gateway": "eu-1"}))
    query = f"{TEXT_MODES['ensemble']}&api_key_file={tmp_path / 'token'}&headers_file={tmp_path / 'headers.json'}"
    backend = make_backend(query, metadata_provider=lambda: [("traceparent", TRACEPARENT)])
    marker, question = marked(QUESTION)
    await collect(backend, GenerationRequest((question,), 3, SamplingParams()))

    [record] = records(scripted_request_log, marker, "ensemble")
    parameters = record["parameters"]
    assert parameters["authorization"] == "Bearer gateway-token-1"
    assert parameters["x-certa-gateway"] == "eu-1"
    assert parameters["traceparent"] == TRACEPARENT


@pytest.fixture
def tls_triton(tmp_path: Path) -> Iterator[tuple[TritonServer, Path]]:
    """A model-less tritonserver serving gRPC over TLS with a self-signed certificate for 127.0.0.1."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    self_signed = "req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1"
    subprocess.run(
        ["openssl", *self_signed.split(), "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True
    )
    repository = tmp_path / "models"
    repository.mkdir()
    server = TritonServer(
        model_repository=repository,
        extra_args=[
            "--model-control-mode=explicit",
            "--grpc-use-ssl=true",
            f"--grpc-server-cert={cert}",
            f"--grpc-server-key={key}",
        ],
    )
    with server:
        yield server, cert


@pytest.mark.asyncio
async def test_tls_connects_with_the_configured_roots(tls_triton: tuple[TritonServer, Path]) -> None:
    server, cert = tls_triton
    trusted = TritonBackend(BackendSpec("secure", f"triton+tls://{server.grpc_url}?mode=text&ca_file={cert}"))
    plaintext = TritonBackend(BackendSpec("plain", f"triton://{server.grpc_url}?mode=text"), connect_timeout_s=3.0)
    try:
        # The server answers ServerReady over TLS; only the (absent) model is missing.
        with pytest.raises(BackendUnavailable, match="text model 'ensemble' is not ready"):
            await trusted.check_ready()
        with pytest.raises(BackendUnavailable, match="cannot reach Triton"):
            await plaintext.check_ready()
    finally:
        await trusted.close()
        await plaintext.close()


async def test_the_served_models_are_the_ready_repository_without_the_tokenizer_steps(
    make_backend: MakeBackend,
) -> None:
    """The catalog requests' `model` is checked against (issue 17): Triton's repository index of ready models."""
    served = await make_backend().served_models()
    assert {"ensemble", "tensorrt_llm", "tensorrt_llm_bls"} <= served
    assert not served & {"preprocessing", "postprocessing"}
