"""One trace across client, controller and Triton.

A dedicated tritonserver serves the scripted TensorRT-LLM-shaped models with OpenTelemetry tracing on; it exports
OTLP/HTTP (JSON) to a small aiohttp receiver. The controller exports OTLP/gRPC to a small `TraceService` receiver.
A client's `traceparent` must come out as one trace: the controller's gRPC server span under the client's span,
`certa.solve` under it, its GenAI CLIENT spans (one per backend call) under that, and Triton's `InferRequest` spans
under those.

tritonserver 2.51 (the bundled server) extracts the propagated context for most calls but not all: a few percent
of its `InferRequest` spans start a trace of their own, at random, although the same call's `traceparent` reaches
the model through `--grpc-header-forward-pattern`. The test asserts the forwarded header for every call and the
joined Triton spans for most of them.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Iterator
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from aiohttp import web
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from certa.backends.triton.backend import TritonBackend
from certa.observability.telemetry import Telemetry
from certa.server import CertaServer
from certa.v1 import reasoning_pb2 as pb
from certa.v1 import reasoning_pb2_grpc as pb_grpc
from certa_triton_local.launcher import TritonServer, free_port
from tests.conftest import FORWARDED_HEADERS, SCRIPTED_REPOSITORY
from tests.system.api.conftest import settings_for

pytestmark = pytest.mark.integration

CLIENT_TRACE_ID = "5af7651916cd43dd8448eb211c80319c"
CLIENT_SPAN_ID = "c7ad6b7169203331"
TRACEPARENT = f"00-{CLIENT_TRACE_ID}-{CLIENT_SPAN_ID}-01"
DYNASOR = pb.Strategy(dynasor_cot=pb.DynasorCot(chunk_tokens=32, certainty_threshold=2, probe_tokens=10))


@dataclass
class Received:
    """Spans a receiver got, by service name."""

    spans: dict[str, list[Span]] = field(default_factory=dict)

    def add(self, request: trace_service_pb2.ExportTraceServiceRequest) -> None:
        for resource_spans in request.resource_spans:
            service = next(
                (a.value.string_value for a in resource_spans.resource.attributes if a.key == "service.name"), ""
            )
            for scope_spans in resource_spans.scope_spans:
                self.spans.setdefault(service, []).extend(scope_spans.spans)


class _TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, received: Received) -> None:
        self._received = received

    def Export(self, request: Any, context: Any) -> trace_service_pb2.ExportTraceServiceResponse:
        self._received.add(request)
        return trace_service_pb2.ExportTraceServiceResponse()


@pytest.fixture
def otlp_grpc_receiver() -> Iterator[tuple[str, Received]]:
    """An OTLP/gRPC trace receiver (what the controller exports to)."""
    received = Received()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_TraceService(received), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"http://127.0.0.1:{port}", received
    server.stop(grace=None)


def _otlp_json_ids_to_base64(value: Any) -> Any:
    """OTLP/JSON writes trace and span ids as hex; protobuf's JSON mapping expects bytes as base64."""
    if isinstance(value, list):
        return [_otlp_json_ids_to_base64(item) for item in value]
    if isinstance(value, dict):
        return {
            key: base64.b64encode(bytes.fromhex(item)).decode()
            if key in ("traceId", "spanId", "parentSpanId") and isinstance(item, str)
            else _otlp_json_ids_to_base64(item)
            for key, item in value.items()
        }
    return value


@pytest.fixture(scope="module")
async def otlp_http_receiver() -> AsyncIterator[tuple[str, Received]]:
    """An OTLP/HTTP trace receiver (what Triton exports to), protobuf or JSON."""
    received = Received()

    async def export(request: web.Request) -> web.Response:
        message = trace_service_pb2.ExportTraceServiceRequest()
        body = await request.read()
        if request.content_type == "application/json":
            json_format.ParseDict(_otlp_json_ids_to_base64(json.loads(body)), message, ignore_unknown_fields=True)
        else:
            message.ParseFromString(body)
        received.add(message)
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/v1/traces", export)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}/v1/traces", received
    await runner.cleanup()


@pytest.fixture(scope="module")
async def traced_triton(
    otlp_http_receiver: tuple[str, Received], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[TritonServer, Path]]:
    url, _ = otlp_http_receiver
    logs = tmp_path_factory.mktemp("traced-triton")
    server = TritonServer(
        model_repository=SCRIPTED_REPOSITORY,
        env={"CERTA_SCRIPTED_REQUEST_LOG": str(logs / "requests.jsonl")},
        extra_args=[
            f"--grpc-header-forward-pattern={FORWARDED_HEADERS}",
            "--trace-config=mode=opentelemetry",
            f"--trace-config=opentelemetry,url={url}",
            "--trace-config=opentelemetry,resource=service.name=triton",
            "--trace-config=opentelemetry,bsp_schedule_delay=100",
            "--trace-config=rate=1",
            "--trace-config=level=TIMESTAMPS",
        ],
        log_path=logs / "tritonserver.log",
    )
    await asyncio.to_thread(server.start)
    yield server, logs / "requests.jsonl"
    await asyncio.to_thread(server.stop)


async def until(condition: Any, timeout_s: float = 15.0) -> None:
    for _ in range(int(timeout_s / 0.1)):
        if condition():
            return
        await asyncio.sleep(0.1)


async def test_controller_and_triton_spans_share_the_clients_trace(
    traced_triton: tuple[TritonServer, Path],
    otlp_http_receiver: tuple[str, Received],
    otlp_grpc_receiver: tuple[str, Received],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    triton, request_log = traced_triton
    _, from_triton = otlp_http_receiver
    endpoint, from_controller = otlp_grpc_receiver
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
    monkeypatch.setenv("OTEL_SERVICE_NAME", "certa-test")
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "none")
    telemetry = Telemetry.from_environment()
    settings = settings_for({"trtllm": f"triton://{triton.grpc_url}"})
    backends = {
        spec.name: TritonBackend(spec, connect_timeout_s=2.0, metadata_provider=telemetry.trace_metadata)
        for spec in settings.backends
    }
    server = CertaServer(settings, backends, telemetry)
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            response = await pb_grpc.ReasoningServiceStub(channel).Solve(
                pb.SolveRequest(question="[[confident-after:100]] Janet?", strategy=DYNASOR, token_budget=1000),
                metadata=(("traceparent", TRACEPARENT),),
            )
    finally:
        await server.stop()
        await asyncio.to_thread(telemetry.shutdown)
    assert response.result.stop_reason == pb.STOP_REASON_CERTAIN

    controller = from_controller.spans["certa-test"]
    [server_span] = [span for span in controller if span.kind == Span.SPAN_KIND_SERVER]
    assert server_span.name == "/certa.v1.ReasoningService/Solve"
    assert server_span.trace_id.hex() == CLIENT_TRACE_ID and server_span.parent_span_id.hex() == CLIENT_SPAN_ID
    [solve] = [span for span in controller if span.name == "certa.solve"]
    assert solve.parent_span_id == server_span.span_id
    calls = [span for span in controller if span.kind == Span.SPAN_KIND_CLIENT]
    assert calls and {span.parent_span_id for span in calls} == {solve.span_id}
    generate_ids = {span.span_id for span in calls}
    assert {span.trace_id.hex() for span in controller} == {CLIENT_TRACE_ID}

    # Every model call carried the traceparent of the backend call span it belongs to.
    forwarded = [json.loads(line)["parameters"].get("traceparent", "") for line in request_log.read_text().splitlines()]
    assert forwarded and all(value.startswith(f"00-{CLIENT_TRACE_ID}-") for value in forwarded)
    assert {bytes.fromhex(value.split("-")[2]) for value in forwarded} <= generate_ids

    # Triton's own spans (one InferRequest per gRPC call, model and compute spans below) join the same trace.
    def triton_roots() -> list[Span]:
        return [span for span in from_triton.spans.get("triton", []) if span.name == "InferRequest"]

    await until(lambda: len(triton_roots()) >= len(forwarded))
    roots = triton_roots()
    joined = [span for span in roots if span.trace_id.hex() == CLIENT_TRACE_ID and span.parent_span_id in generate_ids]
    assert len(roots) >= len(forwarded)
    # tritonserver 2.51 starts a fresh trace for a few percent of calls (about 4% here) although the very same
    # call's metadata reached the model (checked above): a race in its own context extraction, not in Certa.
    assert len(joined) >= 0.8 * len(roots), (len(joined), len(roots))
    models = {
        attribute.value.string_value
        for span in from_triton.spans["triton"]
        if span.trace_id.hex() == CLIENT_TRACE_ID
        for attribute in span.attributes
        if attribute.key == "triton.model_name"
    }
    # Many calls reach tensorrt_llm and postprocessing, so some always join the trace; preprocessing runs once per
    # request, and that single call may be one of the few that Triton puts in a fresh trace (see above).
    assert models >= {"tensorrt_llm", "postprocessing"}
    every_model = {
        attribute.value.string_value
        for span in from_triton.spans["triton"]
        for attribute in span.attributes
        if attribute.key == "triton.model_name"
    }
    assert "preprocessing" in every_model
