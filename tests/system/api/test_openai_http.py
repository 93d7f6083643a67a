"""The OpenAI-compatible HTTP door, driven by the official `openai` client against the real server (real aiohttp
server, real Redis) on the scripted Triton server, and on the in-process scripted backend where a test needs to see
the backend's side (cancellations, readiness, chat templates)."""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import httpx
import openai
import pytest
from openai import AsyncOpenAI, OpenAI

from certa.api.auth import new_api_key
from certa.backends.triton.backend import TritonBackend
from certa.config import AuthSettings, TlsSettings
from certa.demo import openai_examples
from certa.observability.telemetry import Telemetry
from certa.server import CertaServer
from certa.testing.redis_server import RedisServer
from certa.testing.scripted_backend import ScriptedBackend
from certa.testing.scripted_model import DEFAULT_SCRIPT
from certa_triton_local.launcher import TritonServer
from tests.system.api.conftest import settings_for, started
from tests.tls_material import JwtIssuer, Pki

pytestmark = pytest.mark.integration

SCRIPT = DEFAULT_SCRIPT.replace("ANSWER", "18")
FAST = {"strategy": {"dynasor_cot": {"chunkTokens": 32, "certaintyThreshold": 2, "probeTokens": 10}}}
EARLY = "[[confident-after:120]] How much does Janet make?"
THINKING_TEMPLATE = (
    "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|><think>\n{% endif %}"
)


def http_settings(urls: dict[str, str], redis_url: str, **fields: object):
    return replace(settings_for(urls, redis_url), http_listen_address="127.0.0.1:0", **fields)


def base_url(server: CertaServer) -> str:
    return f"http://127.0.0.1:{server.http_port}/v1"


@pytest.fixture
async def triton_http(scripted_triton: TritonServer, redis_server: RedisServer) -> AsyncIterator[CertaServer]:
    """The controller in front of the scripted Triton; model calls carry the current trace context."""
    urls = {
        "trtllm": f"triton://{scripted_triton.grpc_url}",
        "trtllm-text": f"triton://{scripted_triton.grpc_url}?mode=text",
    }
    settings = http_settings(urls, redis_server.url)
    tracing = Telemetry.disabled().trace_metadata
    backends = {
        spec.name: TritonBackend(spec, connect_timeout_s=2.0, metadata_provider=tracing) for spec in settings.backends
    }
    server = await started(settings, backends)
    yield server
    await server.stop()


@pytest.fixture
async def scripted_http(backend: ScriptedBackend, redis_server: RedisServer) -> AsyncIterator[CertaServer]:
    server = await started(http_settings({"scripted": "scripted://"}, redis_server.url), {"scripted": backend})
    yield server
    await server.stop()


@pytest.fixture
def client(triton_http: CertaServer) -> AsyncOpenAI:
    return AsyncOpenAI(base_url=base_url(triton_http), api_key="unused", max_retries=0)


async def test_sync_chat_shows_the_early_exit_with_usage_and_the_extension(triton_http: CertaServer) -> None:
    sync = OpenAI(base_url=base_url(triton_http), api_key="unused", max_retries=0)
    completion = await asyncio.to_thread(
        sync.chat.completions.create,
        model="trtllm",
        messages=[{"role": "user", "content": EARLY}],
        extra_body={"certa": FAST},
    )
    choice = completion.choices[0]
    certa = completion.model_extra["certa"]
    assert certa["stop_reason"] == "certain" and certa["answer"] and certa["probes"] >= 2
    assert choice.finish_reason == "stop"
    kept, exit_text = choice.message.content.split("\n\nOh, I have got the answer")
    assert SCRIPT.startswith(kept) and len(kept) < len(SCRIPT)  # stopped before the model finished
    assert f"\\boxed{{{certa['answer']}}}" in exit_text
    assert completion.usage.completion_tokens == certa["path_tokens"] + certa["probe_tokens"]
    assert certa["probe_tokens"] > 0 and completion.usage.prompt_tokens > 0
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens
    assert completion._request_id == certa["request_id"] and completion.id == f"chatcmpl-{certa['request_id']}"
    assert completion.model == "trtllm"


async def test_async_completion_sends_the_prompt_as_is(client: AsyncOpenAI) -> None:
    completion = await client.completions.create(
        model="trtllm-text", prompt="Janet's ducks", max_tokens=40, extra_body={"certa": {"strategy": {"plain": {}}}}
    )
    choice = completion.choices[0]
    assert choice.text == SCRIPT[len("Janet's ducks") :][:40]  # the script continues the raw prompt
    assert choice.finish_reason == "length" and completion.model_extra["certa"]["stop_reason"] == "budget"
    assert completion.usage.completion_tokens == 40 and completion.usage.prompt_tokens == len("Janet's ducks")


async def test_streamed_chat_is_the_whole_answer_and_ends_with_usage(client: AsyncOpenAI) -> None:
    whole = await client.chat.completions.create(
        model="trtllm", messages=[{"role": "user", "content": EARLY}], extra_body={"certa": FAST}
    )
    stream = await client.chat.completions.create(
        model="trtllm",
        messages=[{"role": "user", "content": EARLY}],
        extra_body={"certa": FAST},
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content  # greedy: the same run, streamed without its cancelled chunk
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 2  # it did stream
    finish = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert [c.choices[0].finish_reason for c in finish] == ["stop"]
    assert finish[0].model_extra["certa"]["stop_reason"] == "certain"
    certa = finish[0].model_extra["certa"]
    assert chunks[-1].choices == [] and chunks[-1].usage.prompt_tokens == whole.usage.prompt_tokens
    assert chunks[-1].usage.completion_tokens == certa["path_tokens"] + certa["probe_tokens"]


async def test_streamed_completion_with_and_without_usage(client: AsyncOpenAI) -> None:
    plain = {"certa": {"strategy": {"plain": {}}}}
    stream = await client.completions.create(model="trtllm", prompt="Janet's", stream=True, extra_body=plain)
    chunks = [chunk async for chunk in stream]
    assert "".join(c.choices[0].text for c in chunks) == SCRIPT[len("Janet's") :]
    assert chunks[-1].choices[0].finish_reason == "stop" and all(c.usage is None for c in chunks)
    assert chunks[-1].model_extra["certa"]["stop_reason"] == "model_finished"
    counted = await client.completions.create(
        model="trtllm", prompt="Janet's", stream=True, stream_options={"include_usage": True}, extra_body=plain
    )
    tail = [chunk async for chunk in counted][-1]
    assert tail.choices == [] and tail.usage.completion_tokens == len(SCRIPT) - len("Janet's")


async def test_a_traceparent_header_makes_the_model_calls_part_of_the_callers_trace(
    client: AsyncOpenAI, scripted_request_log: Path
) -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    traceparent = f"00-{trace_id}-00f067aa0ba902b7-01"
    await client.chat.completions.create(
        model="trtllm",
        messages=[{"role": "user", "content": "traced question"}],
        extra_body={"certa": {"strategy": {"plain": {}}}},
        extra_headers={"traceparent": traceparent},
        max_tokens=20,
    )
    seen = [json.loads(line) for line in scripted_request_log.read_text().splitlines()]
    mine = [entry for entry in seen if "traced question" in entry.get("prompt_head", "")]
    assert mine and all(entry["parameters"].get("traceparent", "").startswith(f"00-{trace_id}-") for entry in mine)


async def test_models_health_and_readiness(triton_http: CertaServer, client: AsyncOpenAI) -> None:
    assert sorted(model.id for model in (await client.models.list()).data) == ["trtllm", "trtllm-text"]
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{triton_http.http_port}") as http:
        assert (await http.get("/healthz")).status_code == 200
        assert (await http.get("/readyz")).status_code == 200


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"logit_bias": {"5": 1}}, "logit_bias"),
        ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools"),
        ({"n": 2}, "n"),
        ({"max_tokens": 100_000}, "max_tokens"),
        (
            {"extra_body": {"certa": {"strategy": {"dynasor_cot": {"chunkTokens": 0}}}}},
            "certa.strategy.dynasor_cot.chunk_tokens",
        ),
        ({"extra_body": {"certa": {"samples": 3}}}, "certa.samples"),
        ({"temperature": 9}, "temperature"),
        (
            {"extra_body": {"certa": {"strategy": {"majority_vote": {"n": 3, "plain": {}}}}}, "temperature": 0},
            "temperature",
        ),
    ],
)
async def test_bad_input_is_400_naming_the_parameter(client: AsyncOpenAI, extra: dict[str, object], param: str) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        await client.chat.completions.create(model="trtllm", messages=[{"role": "user", "content": "Q"}], **extra)
    assert raised.value.status_code == 400 and raised.value.param == param
    assert raised.value.code == "invalid_argument" and param in raised.value.message


async def test_unknown_model_malformed_json_and_oversized_bodies(triton_http: CertaServer, client: AsyncOpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        await client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Q"}])
    async with httpx.AsyncClient(base_url=base_url(triton_http)) as http:
        malformed = await http.post(
            "/chat/completions", content=b'{"model": "trtllm", ', headers={"content-type": "application/json"}
        )
        assert malformed.status_code == 400 and malformed.json()["error"]["param"] == "body"
        huge = "x" * (triton_http.settings.http_max_body_bytes + 1)
        too_large = await http.post(
            "/chat/completions", json={"model": "trtllm", "messages": [{"role": "user", "content": huge}]}
        )
        assert too_large.status_code == 413 and too_large.json()["error"]["code"] == "request_too_large"
        long_prompt = "x" * (triton_http.settings.max_prompt_chars + 1)
        too_long = await http.post(
            "/chat/completions", json={"model": "trtllm", "messages": [{"role": "user", "content": long_prompt}]}
        )
        assert too_long.status_code == 400 and too_long.json()["error"]["param"] == "messages"
        assert (await http.get("/nowhere")).json()["error"]["code"] == "not_found"


async def test_idempotency_key_attaches_retries_and_refuses_other_parameters(client: AsyncOpenAI) -> None:
    headers = {"Idempotency-Key": "http-job-1"}
    messages = [{"role": "user", "content": "Janet?"}]
    plain = {"certa": {"strategy": {"plain": {}}}}
    first = await client.chat.completions.create(
        model="trtllm", messages=messages, extra_headers=headers, extra_body=plain
    )
    again = await client.chat.completions.create(
        model="trtllm", messages=messages, extra_headers=headers, extra_body=plain
    )
    assert first.id == again.id == "chatcmpl-http-job-1" and first.choices[0].message.content == SCRIPT
    with pytest.raises(openai.ConflictError) as raised:
        await client.chat.completions.create(model="trtllm", messages=messages, extra_headers=headers, max_tokens=100)
    assert raised.value.status_code == 409


async def test_a_conversation_is_rendered_with_the_chat_template(
    backend: ScriptedBackend, scripted_http: CertaServer
) -> None:
    """A thinking model (its template opens <think>): the reasoning comes apart from the reply, as a whole and
    streamed; a conversation is sent through the template as the prompt."""
    backend.chat_template_source = THINKING_TEMPLATE
    client = AsyncOpenAI(base_url=base_url(scripted_http), api_key="unused", max_retries=0)
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": EARLY}]
    completion = await client.chat.completions.create(model="scripted", messages=messages, extra_body={"certa": FAST})
    message = completion.choices[0].message
    certa = completion.model_extra["certa"]
    assert certa["stop_reason"] == "certain"
    assert (
        message.content.startswith("Oh, I have got the answer") and f"\\boxed{{{certa['answer']}}}" in message.content
    )
    assert SCRIPT.startswith(message.model_extra["reasoning_content"])
    prompt = "".join(backend.requests[0].prompt)
    assert prompt == f"<|system|>Be brief.\n<|user|>{EARLY}\n<|assistant|><think>\n"  # no instruction added
    stream = await client.chat.completions.create(
        model="scripted", messages=messages, extra_body={"certa": FAST}, stream=True
    )
    deltas = [chunk.choices[0].delta async for chunk in stream if chunk.choices]
    reasoning = "".join(delta.model_extra.get("reasoning_content") or "" for delta in deltas)
    content = "".join(delta.content or "" for delta in deltas)
    assert content == message.content and reasoning.strip("\n") == message.model_extra["reasoning_content"]


async def test_a_client_leaving_mid_stream_cancels_the_run_and_its_backend_calls(
    backend: ScriptedBackend, scripted_http: CertaServer
) -> None:
    client = AsyncOpenAI(base_url=base_url(scripted_http), api_key="unused", max_retries=0)
    stream = await client.chat.completions.create(
        model="scripted",
        messages=[{"role": "user", "content": "[[slow:0.05]] Q"}],
        extra_body={"certa": {"strategy": {"plain": {}}}},
        stream=True,
    )
    received = 0
    async for chunk in stream:
        received += bool(chunk.choices and chunk.choices[0].delta.content)
        if received == 3:
            break
    await stream.close()
    for _ in range(100):
        if backend.cancelled and not scripted_http.service.in_flight():
            break
        await asyncio.sleep(0.05)
    assert backend.cancelled and len(backend.requests) == 1
    assert scripted_http.service.in_flight() == 0


async def test_readiness_follows_the_backend(backend: ScriptedBackend, scripted_http: CertaServer) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{scripted_http.http_port}") as http:
        assert (await http.get("/readyz")).status_code == 200
        backend.available = False
        await scripted_http._check_readiness()
        assert (await http.get("/readyz")).status_code == 503
        assert (await http.get("/healthz")).status_code == 200


async def test_backend_down_is_503_and_a_deadline_is_504_with_the_partial_result(
    backend: ScriptedBackend, scripted_http: CertaServer
) -> None:
    client = AsyncOpenAI(base_url=base_url(scripted_http), api_key="unused", max_retries=0)
    with pytest.raises(openai.APIStatusError) as raised:
        await client.chat.completions.create(
            model="scripted",
            messages=[{"role": "user", "content": "[[slow:0.02]] Q"}],
            extra_body={"certa": {"strategy": {"plain": {}}, "deadline": "0.4s"}},
        )
    assert raised.value.status_code == 504
    partial = raised.value.body["certa"]["partial"]
    assert partial["path_tokens"] > 0 and SCRIPT.startswith(partial["text"]) and partial["text"]
    backend.available = False
    with pytest.raises(openai.InternalServerError) as down:
        await client.chat.completions.create(model="scripted", messages=[{"role": "user", "content": "Q"}])
    assert down.value.status_code == 503


async def test_api_keys_tenants_and_quotas(redis_server: RedisServer, tmp_path: Path) -> None:
    key, digest = new_api_key()
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps({"keys": [{"name": "ci", "tenant": "acme", "sha256": digest}]}))
    tenants = tmp_path / "tenants.json"
    tenants.write_text(json.dumps({"tenants": {"acme": {"max_tokens_per_request": 100, "max_in_flight": 1}}}))
    settings = http_settings(
        {"scripted": "scripted://"},
        redis_server.url,
        auth=AuthSettings(api_keys_file=str(keys)),
        tenants_file=str(tenants),
    )
    server = await started(settings, {"scripted": ScriptedBackend()})
    try:
        messages = [{"role": "user", "content": "Q"}]
        anonymous = AsyncOpenAI(base_url=base_url(server), api_key="certa_wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            await anonymous.models.list()
        with pytest.raises(openai.AuthenticationError):
            await anonymous.chat.completions.create(model="scripted", messages=messages)
        client = AsyncOpenAI(base_url=base_url(server), api_key=key, max_retries=0)
        with pytest.raises(openai.RateLimitError) as too_big:  # over the tenant's tokens per request
            await client.chat.completions.create(model="scripted", messages=messages, max_tokens=500)
        assert "Retry-After" not in too_big.value.response.headers  # waiting would not help
        slow = [{"role": "user", "content": "[[slow:0.02]] Q"}]
        running = asyncio.ensure_future(
            client.chat.completions.create(
                model="scripted", messages=slow, max_tokens=80, extra_body={"certa": {"strategy": {"plain": {}}}}
            )
        )
        await asyncio.sleep(0.3)
        with pytest.raises(openai.RateLimitError) as limited:
            await client.chat.completions.create(model="scripted", messages=messages, max_tokens=80)
        assert limited.value.status_code == 429 and limited.value.response.headers["Retry-After"]
        assert (await running).choices[0].message.content
    finally:
        await server.stop()


async def test_https_with_client_certificates_and_jwts(redis_server: RedisServer, tmp_path: Path) -> None:
    """The HTTP door uses the gRPC server's TLS: a client certificate's common name or a JWT names the tenant."""
    pki, issuer = Pki.create(), JwtIssuer()
    files = pki.write(tmp_path / "tls")
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(issuer.jwks()))
    auth = AuthSettings(
        jwks_file=str(jwks), jwt_issuer="https://issuer.example", jwt_audience="certa", client_cert=True
    )
    tls = TlsSettings(str(files["server_cert"]), str(files["server_key"]), str(files["ca"]))
    server = await started(
        http_settings({"scripted": "scripted://"}, redis_server.url, auth=auth, tls=tls),
        {"scripted": ScriptedBackend()},
    )
    cert, key = pki.issue("acme")
    (tmp_path / "client.pem").write_bytes(cert + key)
    context = ssl.create_default_context(cafile=str(files["ca"]))
    context.load_cert_chain(tmp_path / "client.pem")
    url = f"https://127.0.0.1:{server.http_port}/v1"
    try:
        # No bearer token: the certificate is the credential.
        by_certificate = AsyncOpenAI(base_url=url, api_key="unused", http_client=httpx.AsyncClient(verify=context))
        reply = await by_certificate.chat.completions.create(
            model="scripted",
            messages=[{"role": "user", "content": "Q"}],
            extra_headers={"Idempotency-Key": "tls-1", "Authorization": openai.omit},
        )
        assert reply.id == "chatcmpl-tls-1"
        token = issuer.token(iss="https://issuer.example", aud="certa", sub="svc", tenant="globex")
        by_jwt = AsyncOpenAI(base_url=url, api_key=token, http_client=httpx.AsyncClient(verify=context), max_retries=0)
        # Another tenant: the same id is a different request there, so other parameters are no conflict.
        other = await by_jwt.chat.completions.create(
            model="scripted", messages=[{"role": "user", "content": "R"}], extra_headers={"Idempotency-Key": "tls-1"}
        )
        assert other.id == "chatcmpl-tls-1" and other.model_extra["certa"]["request_id"] == "tls-1"
        plaintext = AsyncOpenAI(base_url=url.replace("https", "http"), api_key=token, max_retries=0)
        with pytest.raises(openai.APIConnectionError):
            await plaintext.models.list()
    finally:
        await server.stop()


async def test_the_demos_examples_name_a_served_model_and_work(scripted_http: CertaServer) -> None:
    url = f"http://127.0.0.1:{scripted_http.http_port}"
    examples = await asyncio.to_thread(openai_examples, url)
    assert "(model 'scripted')" in examples and f"curl -s {url}/v1/chat/completions" in examples
    body = json.loads(examples.split("-d '")[1].split("'\n")[0])
    async with httpx.AsyncClient() as http:
        reply = await http.post(f"{url}/v1/chat/completions", json=body, headers={"Authorization": "Bearer local"})
    assert reply.status_code == 200 and reply.json()["choices"][0]["message"]["content"]
