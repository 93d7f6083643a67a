"""Telemetry of the OpenAI-compatible HTTP door: the official `openai` client against the real aiohttp server (in-
process scripted backend), with spans and metrics read from in-memory exporters by the OpenTelemetry HTTP semantic
convention names, and the access and audit lines parsed back from the JSON the server writes."""

from __future__ import annotations

import asyncio
import json
import re
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai import AsyncOpenAI
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from certa.api.auth import new_api_key
from certa.config import AuthSettings
from certa.observability.telemetry import Telemetry
from certa.server import CertaServer
from certa.testing.scripted_backend import ScriptedBackend
from certa_triton_local.launcher import free_port
from tests.contract.chart.conftest import CHART
from tests.system.api.conftest import Logged, settings_for

pytestmark = pytest.mark.integration

CHAT = "POST /v1/chat/completions"
CLIENT_TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{CLIENT_TRACE_ID}-{CLIENT_SPAN_ID}-01"
DYNASOR = {"strategy": {"dynasor_cot": {"chunkTokens": 32, "certaintyThreshold": 2, "probeTokens": 10}}}
PLAIN = {"strategy": {"plain": {}}}
PLANTED = "certa_PLANTED-secret-4f9c2d"  # looks like an API key; must never be written anywhere
METRIC_ATTRIBUTES = {"http.request.method", "http.route", "http.response.status_code", "url.scheme"}


@dataclass
class Door:
    server: CertaServer
    backend: ScriptedBackend
    spans: InMemorySpanExporter
    metrics: InMemoryMetricReader
    key: str

    def client(self, key: str = "") -> AsyncOpenAI:
        url = f"http://127.0.0.1:{self.server.http_port}/v1"
        return AsyncOpenAI(base_url=url, api_key=key or self.key, max_retries=0)

    def server_spans(self) -> list[ReadableSpan]:
        return [span for span in self.spans.get_finished_spans() if span.kind is SpanKind.SERVER]

    def points(self, name: str) -> list[Any]:
        data = self.metrics.get_metrics_data()
        assert data is not None
        return [
            point
            for resource in data.resource_metrics
            for scope in resource.scope_metrics
            for metric in scope.metrics
            if metric.name == name
            for point in metric.data.data_points
        ]


def serving_settings(tmp_path: Path, digest: str) -> Any:
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps({"keys": [{"name": "ci", "tenant": "acme", "sha256": digest}]}))
    settings = settings_for({"scripted": "scripted://"}, auth=AuthSettings(api_keys_file=str(keys)))
    return replace(settings, http_listen_address="127.0.0.1:0")


@pytest.fixture
async def door(tmp_path: Path) -> AsyncIterator[Door]:
    key, digest = new_api_key()
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    telemetry = Telemetry(tracer_provider, MeterProvider(metric_readers=[reader]))
    backend = ScriptedBackend()
    server = CertaServer(serving_settings(tmp_path, digest), {"scripted": backend}, telemetry)
    await server.start()
    yield Door(server, backend, spans, reader, key)
    await server.stop()
    tracer_provider.shutdown()


def only(items: list[Any]) -> Any:
    assert len(items) == 1, items
    return items[0]


async def test_a_chat_completion_is_a_server_span_a_duration_and_one_access_line(door: Door, logged: Logged) -> None:
    completion = await door.client().chat.completions.create(
        model="scripted",
        messages=[{"role": "user", "content": "[[confident-after:100]] How many eggs?"}],
        extra_body={"certa": DYNASOR},
        extra_headers={"traceparent": TRACEPARENT, "User-Agent": "tele-test/1"},
    )
    request_id = completion._request_id
    spans = door.spans.get_finished_spans()

    server = only(door.server_spans())
    assert (server.name, server.status.status_code) == (CHAT, StatusCode.UNSET)
    assert format(server.context.trace_id, "032x") == CLIENT_TRACE_ID
    assert server.parent is not None and format(server.parent.span_id, "016x") == CLIENT_SPAN_ID
    attributes = dict(server.attributes or {})
    assert attributes == {
        "http.request.method": "POST",
        "http.route": "/v1/chat/completions",
        "http.response.status_code": 200,
        "url.scheme": "http",
        "url.path": "/v1/chat/completions",
        "server.address": "127.0.0.1",
        "server.port": door.server.http_port,
        "network.protocol.version": "1.1",
        "client.address": "127.0.0.1",
        "user_agent.original": "tele-test/1",
        "certa.request_id": request_id,
    }
    solve = only([span for span in spans if span.name == "certa.solve"])
    assert solve.parent is not None and solve.parent.span_id == server.context.span_id
    assert solve.attributes["certa.request_id"] == request_id and solve.attributes["certa.stop_reason"] == "certain"

    duration = only(door.points("http.server.request.duration"))
    assert dict(duration.attributes) == {
        "http.request.method": "POST",
        "http.route": "/v1/chat/completions",
        "http.response.status_code": 200,
        "url.scheme": "http",
    }
    assert duration.count == 1 and 0 < duration.sum < 30
    request = only(door.points("certa.request.duration"))
    assert dict(request.attributes) == {"rpc": CHAT, "strategy": "dynasor-cot", "status": "OK"}
    assert request.sum == pytest.approx(duration.sum)

    access = only(logged.of("certa.access"))
    assert {key: access[key] for key in ("event", "rpc.method", "http.request.method", "http.route")} == {
        "event": "access",
        "rpc.method": CHAT,
        "http.request.method": "POST",
        "http.route": "/v1/chat/completions",
    }
    assert (access["tenant"], access["request_id"], access["strategy"], access["status"]) == (
        "acme",
        request_id,
        "dynasor-cot",
        "OK",
    )
    assert access["http.response.status_code"] == 200 and access["level"] == "INFO"
    assert access["tokens"] == completion.usage.completion_tokens > 0
    assert access["duration_s"] == pytest.approx(duration.sum, abs=1e-5)
    assert access["timestamp"].endswith("Z")
    assert (access["trace_id"], access["span_id"]) == (CLIENT_TRACE_ID, format(server.context.span_id, "016x"))
    # The request's own lines (from the task that ran it) carry its id and tenant too.
    ran = [line for line in logged.lines() if line.get("request_id") == request_id and line["logger"] != "certa.access"]
    assert all(line["tenant"] == "acme" for line in ran)


async def test_a_streamed_answer_ends_its_span_when_the_stream_ends(door: Door, logged: Logged) -> None:
    stream = await door.client().chat.completions.create(
        model="scripted",
        messages=[{"role": "user", "content": "[[slow:0.01]] Q"}],
        extra_body={"certa": PLAIN},
        max_tokens=60,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = []
    async for chunk in stream:
        chunks.append(chunk)
        if len(chunks) == 3:  # the answer is being streamed: its request has not ended
            assert door.server_spans() == [] and door.points("http.server.request.duration") == []
    assert len(chunks) > 10
    for _ in range(50):  # the handler returns just after the client read the stream's end
        if door.server_spans():
            break
        await asyncio.sleep(0.02)
    server = only(door.server_spans())
    assert server.attributes["http.response.status_code"] == 200 and server.status.status_code is StatusCode.UNSET
    assert (server.end_time - server.start_time) / 1e9 >= 60 * 0.01  # sixty tokens, one every 10 ms
    assert only(door.points("http.server.request.duration")).count == 1
    access = only(logged.of("certa.access"))
    assert (access["status"], access["strategy"], access["tokens"]) == (
        "OK",
        "plain",
        chunks[-1].usage.completion_tokens,
    )


async def test_failures_by_the_conventions_4xx_is_the_callers_5xx_the_servers(door: Door, logged: Logged) -> None:
    client = door.client()
    question = [{"role": "user", "content": "Q"}]
    with pytest.raises(openai.BadRequestError):
        await client.chat.completions.create(model="scripted", messages=question, temperature=7)
    door.backend.available = False
    with pytest.raises(openai.InternalServerError):
        await client.chat.completions.create(model="scripted", messages=question)
    door.backend.available = True
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{door.server.http_port}") as http:
        assert (await http.get("/v1/nowhere")).status_code == 404

    bad, down, nowhere = sorted(door.server_spans(), key=lambda span: span.start_time)
    assert (bad.attributes["http.response.status_code"], bad.status.status_code) == (400, StatusCode.UNSET)
    assert "error.type" not in bad.attributes
    assert (down.attributes["http.response.status_code"], down.attributes["error.type"]) == (503, "503")
    assert down.status.status_code is StatusCode.ERROR
    assert nowhere.name == "GET" and "http.route" not in nowhere.attributes
    assert nowhere.attributes["url.path"] == "/v1/nowhere"

    durations = {
        point.attributes["http.response.status_code"]: point for point in door.points("http.server.request.duration")
    }
    assert set(durations) == {400, 503, 404}
    assert set(durations[400].attributes) == METRIC_ATTRIBUTES
    assert dict(durations[503].attributes) == {
        "http.request.method": "POST",
        "http.route": "/v1/chat/completions",
        "http.response.status_code": 503,
        "url.scheme": "http",
        "error.type": "503",
    }
    assert "http.route" not in durations[404].attributes  # no route: no unbounded path in a label
    statuses = {point.attributes["status"]: point.attributes["rpc"] for point in door.points("certa.request.duration")}
    assert statuses == {"INVALID_ARGUMENT": CHAT, "UNAVAILABLE": CHAT}  # a request to no route is no call

    assert [(line["status"], line["http.response.status_code"]) for line in logged.of("certa.access")] == [
        ("INVALID_ARGUMENT", 400),
        ("UNAVAILABLE", 503),
    ]


async def test_a_stream_that_fails_after_its_200_is_an_error_span(door: Door, logged: Logged) -> None:
    stream = await door.client().chat.completions.create(
        model="scripted",
        messages=[{"role": "user", "content": "[[fail-after:40]] Q"}],
        extra_body={"certa": PLAIN},
        stream=True,
    )
    with pytest.raises(openai.APIError):
        async for _ in stream:
            pass
    server = only(door.server_spans())
    assert server.attributes["http.response.status_code"] == 200
    assert server.status.status_code is StatusCode.ERROR and server.attributes["error.type"] == "SolveInterrupted"
    duration = only(door.points("http.server.request.duration"))
    assert duration.attributes["error.type"] == "SolveInterrupted"
    access = only(logged.of("certa.access"))
    assert (access["status"], access["http.response.status_code"]) == ("UNAVAILABLE", 200)
    assert only(door.points("certa.request.duration")).attributes["status"] == "UNAVAILABLE"


async def test_refused_credentials_are_audit_lines_naming_the_route_without_the_secret(
    door: Door, logged: Logged
) -> None:
    with pytest.raises(openai.AuthenticationError):
        await door.client(PLANTED).chat.completions.create(
            model="scripted", messages=[{"role": "user", "content": "Q"}]
        )
    with pytest.raises(openai.AuthenticationError):
        await door.client(PLANTED).models.list()

    audit = logged.of("certa.audit")
    assert [(line["rpc.method"], line["credential"], line["reason"]) for line in audit] == [
        (CHAT, "api-key", "unknown API key"),
        ("GET /v1/models", "api-key", "unknown API key"),
    ]
    assert all(line["event"] == "credential_refused" and line["level"] == "WARNING" for line in audit)
    assert all(len(line["trace_id"]) == 32 for line in audit)  # inside the request's server span
    access = logged.of("certa.access")
    assert [(line["rpc.method"], line["status"], line["http.response.status_code"]) for line in access] == [
        (CHAT, "UNAUTHENTICATED", 401),
        ("GET /v1/models", "UNAUTHENTICATED", 401),
    ]
    assert all(line["tenant"] == "" for line in access)
    assert "PLANTED" not in logged.stream.getvalue()
    spans = door.spans.get_finished_spans()
    assert not [span for span in spans if any("PLANTED" in str(value) for value in (span.attributes or {}).values())]


async def test_a_client_leaving_mid_stream_is_cancelled_not_an_error(door: Door, logged: Logged) -> None:
    stream = await door.client().chat.completions.create(
        model="scripted",
        messages=[{"role": "user", "content": "[[slow:0.05]] Q"}],
        extra_body={"certa": PLAIN},
        stream=True,
    )
    received = 0
    async for chunk in stream:
        received += bool(chunk.choices and chunk.choices[0].delta.content)
        if received == 3:
            break
    await stream.close()
    for _ in range(100):
        if door.server_spans():
            break
        await asyncio.sleep(0.05)
    server = only(door.server_spans())
    assert server.attributes["certa.cancelled"] is True and server.attributes["http.response.status_code"] == 200
    assert server.status.status_code is StatusCode.UNSET and "error.type" not in server.attributes
    assert only(logged.of("certa.access"))["status"] == "CANCELLED"


async def test_the_prometheus_names_the_dashboard_queries_are_served(tmp_path: Path) -> None:
    key, digest = new_api_key()
    metrics_port = free_port()
    telemetry = Telemetry.from_environment(metrics_port, env={})
    server = CertaServer(serving_settings(tmp_path, digest), {"scripted": ScriptedBackend()}, telemetry)
    await server.start()
    try:
        client = AsyncOpenAI(base_url=f"http://127.0.0.1:{server.http_port}/v1", api_key=key, max_retries=0)
        await client.completions.create(model="scripted", prompt="Janet", max_tokens=8, extra_body={"certa": PLAIN})
        scrape = await asyncio.to_thread(
            lambda: urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
        )
    finally:
        await server.stop()
        await asyncio.to_thread(telemetry.shutdown)
    samples = [line for line in scrape.splitlines() if line.startswith("http_server_request_duration_seconds_count")]
    [completions] = [line for line in samples if 'http_route="/v1/completions"' in line]
    assert 'http_request_method="POST"' in completions and 'http_response_status_code="200"' in completions
    assert 'url_scheme="http"' in completions
    [request] = [
        line
        for line in scrape.splitlines()
        if re.match(r'certa_request_duration_seconds_count\{.*rpc="POST /v1/completions"', line)
    ]
    assert 'status="OK"' in request and 'strategy="plain"' in request
    dashboard = (CHART / "dashboards" / "certa-dashboard.json").read_text()
    assert set(re.findall(r"http_server_[a-z_]+", dashboard)) <= {
        line.split("{")[0] for line in scrape.splitlines() if line.startswith("http_server_")
    }
    assert "http_server_request_duration_seconds_bucket" in dashboard
