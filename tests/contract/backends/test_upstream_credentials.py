"""Credentials Certa sends upstream: a bearer token and extra headers from files, checked by a real HTTP server,
rotated without a restart, refused as UNAVAILABLE naming the backend, and never written to a message or a log."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web

from certa import watched_file
from certa.api.status_codes import status_code
from certa.backends.openai.backend import OpenAIBackend
from certa.backends.triton.options import TritonOptions
from certa.config import BackendSpec
from certa.core.errors import BackendUnavailable, InvalidArgument
from certa.core.types import GenerationRequest, SamplingParams
from certa_triton_local.launcher import free_port

pytestmark = pytest.mark.integration

TOKEN = "sk-upstream-PLANTED-7d1e"
ROTATED = "sk-upstream-ROTATED-93ab"
USAGE = {"prompt_tokens": 3, "completion_tokens": 1}
REQUEST = GenerationRequest(("2+2=",), max_tokens=4, sampling=SamplingParams(seed=1))


@dataclass
class GuardedServer:
    """An OpenAI-compatible server that answers only callers presenting `token` (401 otherwise, quoting them)."""

    token: str = TOKEN
    url: str = ""
    seen: list[dict[str, str]] = field(default_factory=list)

    def _refusal(self, request: web.Request) -> web.Response | None:
        self.seen.append(dict(request.headers))
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            quoted = request.headers.get("Authorization", "")
            return web.json_response({"error": {"message": f"invalid key {quoted}"}}, status=401)
        return None

    async def models(self, request: web.Request) -> web.Response:
        return self._refusal(request) or web.json_response({"data": [{"id": "m"}]})

    async def complete(self, request: web.Request) -> web.StreamResponse:
        refused = self._refusal(request)
        if refused is not None:
            return refused
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        chunk = {"choices": [{"index": 0, "text": "4", "finish_reason": "stop"}], "usage": USAGE}
        await response.write(f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n".encode())
        return response


@pytest_asyncio.fixture
async def guarded() -> AsyncIterator[GuardedServer]:
    server = GuardedServer()
    app = web.Application()
    app.router.add_get("/v1/models", server.models)
    app.router.add_post("/v1/completions", server.complete)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    server.url = f"openai+http://127.0.0.1:{port}/v1"
    yield server
    await runner.cleanup()


def secret_files(tmp_path: Path, token: str) -> tuple[Path, Path]:
    key = tmp_path / "api-key"
    key.write_text(token + "\n")
    headers = tmp_path / "headers.json"
    headers.write_text(json.dumps({"X-Org": "certa", "X-Gateway-Key": "gw-PLANTED"}))
    return key, headers


async def generate(backend: OpenAIBackend) -> str:
    return "".join([delta.text async for delta in backend.stream(REQUEST, "")])


async def test_the_token_and_headers_from_files_reach_the_server_and_a_rotation_is_picked_up(
    guarded: GuardedServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key, headers = secret_files(tmp_path, TOKEN)
    url = f"{guarded.url}?api_key_file={key}&headers_file={headers}"
    backend = OpenAIBackend(BackendSpec("hosted", url), metadata_provider=lambda: [("traceparent", "00-ab-cd-01")])
    try:
        await backend.check_ready()
        assert await generate(backend) == "4"
        sent = guarded.seen[-1]
        assert sent["Authorization"] == f"Bearer {TOKEN}"
        assert (sent["x-org"], sent["x-gateway-key"], sent["traceparent"]) == ("certa", "gw-PLANTED", "00-ab-cd-01")

        guarded.token = ROTATED
        key.write_text(ROTATED)
        os.utime(key, (1, 1))  # a new stamp even within the file system's time resolution
        monkeypatch.setattr(watched_file, "RELOAD_CHECK_S", 0.0)
        assert await generate(backend) == "4"
        assert guarded.seen[-1]["Authorization"] == f"Bearer {ROTATED}"
    finally:
        await backend.close()


async def test_a_refused_token_is_unavailable_naming_the_backend_and_never_logged(
    guarded: GuardedServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    guarded.token = "the-one-the-server-wants"
    key, _ = secret_files(tmp_path, TOKEN)
    backend = OpenAIBackend(BackendSpec("hosted", f"{guarded.url}?api_key_file={key}"))
    caplog.set_level(logging.DEBUG)
    try:
        with pytest.raises(BackendUnavailable) as refused:
            await generate(backend)
    finally:
        await backend.close()
    assert guarded.seen[-1]["Authorization"] == f"Bearer {TOKEN}"  # it was sent, and refused
    message = str(refused.value)
    assert "'hosted'" in message and "refused" in message and "401" in message
    assert status_code(refused.value).name == "UNAVAILABLE"
    assert "PLANTED" not in message
    assert "PLANTED" not in caplog.text


def test_credentials_in_the_url_or_unusable_files_are_refused_at_start(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="api_key_file"):
        OpenAIBackend(BackendSpec("hosted", "openai+https://user:sk-secret@api.example/v1"))
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(InvalidArgument, match="must hold one token") as error:
        OpenAIBackend(BackendSpec("hosted", f"openai+https://api.example/v1?api_key_file={empty}"))
    assert "CERTA_BACKENDS" in str(error.value) and "hosted" in str(error.value)
    bad_headers = tmp_path / "headers.json"
    bad_headers.write_text(json.dumps({"Authorization": "Bearer x"}))
    with pytest.raises(InvalidArgument, match="use api_key_file"):
        OpenAIBackend(BackendSpec("hosted", f"openai+https://api.example/v1?headers_file={bad_headers}"))


def test_triton_sends_the_token_and_headers_as_call_metadata(tmp_path: Path) -> None:
    key, headers = secret_files(tmp_path, TOKEN)
    options = TritonOptions.from_spec(
        BackendSpec("gw", f"triton+tls://triton.example:443?api_key_file={key}&headers_file={headers}")
    )
    provider = options.credentials.with_call_metadata(lambda: [("traceparent", "00-ab-cd-01")])
    assert provider is not None
    pairs: list[Any] = list(provider())
    assert pairs == [
        ("traceparent", "00-ab-cd-01"),
        ("authorization", f"Bearer {TOKEN}"),
        ("x-org", "certa"),
        ("x-gateway-key", "gw-PLANTED"),
    ]
    assert TOKEN not in repr(options)
