"""End to end with a real model: controller → local Triton (SmolLM2-135M through llama.cpp) → answer."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from openai import AsyncOpenAI, OpenAI

from certa.backends.triton.backend import TritonBackend
from certa.config import AuthSettings, BackendSpec, HttpModel, Settings, StoreSettings
from certa.server import CertaServer
from certa.testing.redis_server import RedisServer
from certa.v1 import reasoning_pb2 as pb
from certa.v1 import reasoning_pb2_grpc as pb_grpc
from certa_triton_local.launcher import TritonServer, free_port

# The real model and `make up` (which may build and load it) run past the suite's per-test timeout.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]

REPO = Path(__file__).resolve().parents[2]
QUESTION = "Tom has 3 boxes with 4 apples in each box. How many apples does Tom have?"


async def controller_for(triton: TritonServer, redis: RedisServer) -> AsyncIterator[pb_grpc.ReasoningServiceStub]:
    settings = Settings(
        listen_address="127.0.0.1:0",
        backends=(BackendSpec("local", f"triton://{triton.grpc_url}"),),
        store=StoreSettings(redis_url=redis.url, key_prefix=f"e2e-{uuid.uuid4().hex[:8]}"),
        auth=AuthSettings(disabled=True),
    )
    backend = TritonBackend(settings.backends[0], connect_timeout_s=5.0)
    server = CertaServer(settings, {"local": backend})
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield pb_grpc.ReasoningServiceStub(channel)
    await server.stop()


@pytest.fixture
async def stub(triton: TritonServer, redis_server: RedisServer) -> AsyncIterator[pb_grpc.ReasoningServiceStub]:
    async for controller in controller_for(triton, redis_server):
        yield controller


@pytest.fixture
async def fresh_stub(
    fresh_triton: TritonServer, redis_server: RedisServer
) -> AsyncIterator[pb_grpc.ReasoningServiceStub]:
    """A controller in front of a model server with a fresh KV cache (see tests/conftest.py for why)."""
    async for controller in controller_for(fresh_triton, redis_server):
        yield controller


async def test_dynasor_cot_on_a_real_model_records_probes_and_tokens(stub: pb_grpc.ReasoningServiceStub) -> None:
    strategy = pb.Strategy(dynasor_cot=pb.DynasorCot(chunk_tokens=32, certainty_threshold=2))
    response = await stub.Solve(pb.SolveRequest(question=QUESTION, strategy=strategy, token_budget=256))
    result = response.result
    assert response.status == pb.SOLVE_STATUS_SUCCEEDED
    assert result.stop_reason in (pb.STOP_REASON_CERTAIN, pb.STOP_REASON_MODEL_FINISHED, pb.STOP_REASON_BUDGET)
    assert result.probes, "a path of more than one chunk is probed"
    assert [p.position_tokens for p in result.probes] == [32 * (i + 1) for i in range(len(result.probes))]
    assert result.usage.probe_tokens == sum(p.tokens for p in result.probes)
    assert 0 < result.usage.path_tokens <= 256
    assert result.text and QUESTION not in result.text  # the prompt is never part of the returned text
    # Probes share their prefix with the path: the server served most prompt tokens from its KV cache.
    assert result.usage.cached_prompt_tokens > result.usage.prompt_tokens // 2


async def test_chunked_path_is_token_for_token_the_one_shot_path(fresh_stub: pb_grpc.ReasoningServiceStub) -> None:
    # 480 tokens: runs of the local stack once drifted apart after about 200 tokens, past what 160 would show.
    plain = await fresh_stub.Solve(pb.SolveRequest(question=QUESTION, strategy=pb.Strategy(plain=pb.PlainCot()),
                                             token_budget=480))
    chunked_strategy = pb.Strategy(dynasor_cot=pb.DynasorCot(chunk_tokens=24, disable_early_exit=True))
    chunked = await fresh_stub.Solve(
        pb.SolveRequest(question=QUESTION, strategy=chunked_strategy, token_budget=480)
    )
    assert chunked.result.text == plain.result.text
    assert chunked.result.usage.path_tokens == plain.result.usage.path_tokens
    assert chunked.result.stop_reason == plain.result.stop_reason
    # Without a boxed answer in the text, the probed path falls back to its last non-empty probe.
    fallback = next((p.answer for p in reversed(chunked.result.probes) if p.answer), "")
    assert chunked.result.answer == (plain.result.answer or fallback)


async def test_openai_client_against_a_real_model(triton: TritonServer, redis_server: RedisServer) -> None:
    """The official client, streaming and not, through the HTTP door to the real model; early exit as configured."""
    settings = Settings(
        listen_address="127.0.0.1:0",
        http_listen_address="127.0.0.1:0",
        http_models=(
            HttpModel("smol", "local", strategy_json='{"dynasor_cot": {"chunkTokens": 32, "certaintyThreshold": 2}}'),
        ),
        backends=(BackendSpec("local", f"triton://{triton.grpc_url}"),),
        store=StoreSettings(redis_url=redis_server.url, key_prefix=f"e2e-{uuid.uuid4().hex[:8]}"),
        auth=AuthSettings(disabled=True),
    )
    server = CertaServer(settings, {"local": TritonBackend(settings.backends[0], connect_timeout_s=5.0)})
    await server.start()
    try:
        client = AsyncOpenAI(base_url=f"http://127.0.0.1:{server.http_port}/v1", api_key="local", max_retries=0)
        messages = [{"role": "user", "content": QUESTION}]
        reply = await client.chat.completions.create(model="smol", messages=messages, max_tokens=256)
        certa = reply.model_extra["certa"]
        assert certa["strategy"] == "dynasor-cot" and certa["probes"] >= 1
        assert reply.usage.completion_tokens == certa["path_tokens"] + certa["probe_tokens"]
        assert reply.choices[0].finish_reason == ("length" if certa["stop_reason"] == "budget" else "stop")
        if certa["stop_reason"] == "certain":
            assert f"\\boxed{{{certa['answer']}}}" in reply.choices[0].message.content
        stream = await client.chat.completions.create(
            model="smol", messages=messages, max_tokens=96, stream=True, stream_options={"include_usage": True}
        )
        chunks = [chunk async for chunk in stream]
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    finally:
        await server.stop()


def test_make_up_twice_solve_and_down(smollm2_gguf: Path, tmp_path: Path) -> None:
    """The local-stack script as `make up` runs it, on free ports, with the small model."""
    env = {
        **os.environ,
        "VENV": str(Path(sys.executable).parents[1]),
        "STATE_DIR": str(tmp_path / "state"),
        "MODEL": "smollm2-135m",
        "CERTA_PORT": str(free_port()),
        "CERTA_HTTP_PORT": str(free_port()),
        "TRITON_GRPC_PORT": str(free_port()),
        "TRITON_HTTP_PORT": str(free_port()),
        "TRITON_METRICS_PORT": str(free_port()),
        "REDIS_PORT": str(free_port()),
    }
    stack = [str(REPO / "deploy" / "local" / "stack.sh")]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["bash", *args], env=env, capture_output=True, text=True, timeout=600, check=False)

    try:
        first = run(*stack, "up")
        assert first.returncode == 0, first.stdout + first.stderr
        second = run(*stack, "up")
        assert second.returncode == 0 and "already up" in second.stdout
        solved = subprocess.run(
            [str(Path(sys.executable).parent / "certa"), "solve", "--json", "--address",
             f"127.0.0.1:{env['CERTA_PORT']}", "--budget", "96", QUESTION],
            capture_output=True, text=True, timeout=300, check=False,
        )
        assert solved.returncode == 0, solved.stderr
        assert '"status": "SOLVE_STATUS_SUCCEEDED"' in solved.stdout
        client = OpenAI(base_url=f"http://127.0.0.1:{env['CERTA_HTTP_PORT']}/v1", api_key="local", max_retries=0)
        assert [model.id for model in client.models.list().data] == ["smollm2-135m"]
        reply = client.chat.completions.create(
            model="smollm2-135m", messages=[{"role": "user", "content": QUESTION}], max_tokens=96
        )
        certa = reply.model_extra["certa"]
        assert reply.choices[0].message.content and certa["stop_reason"] in ("certain", "model_finished", "budget")
        assert reply.usage.completion_tokens == certa["path_tokens"] + certa["probe_tokens"] > 0
        busy = run(*stack, "down")
        assert all(f"stopped {name}" in busy.stdout for name in ("controller", "triton", "redis"))
        env["CERTA_PORT"] = env["TRITON_HTTP_PORT"] = str(free_port())
        with_blocked_port = _listen_and_run(run, stack, int(env["CERTA_PORT"]))
        assert with_blocked_port.returncode != 0
        assert f"port {env['CERTA_PORT']}" in with_blocked_port.stderr
    finally:
        run(*stack, "down")


def _listen_and_run(run, stack: list[str], port: int) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
        sock.listen()
        return run(*stack, "up")  # type: ignore[no-any-return]
