"""Traces and metrics of requests run through the real gRPC server with the in-process scripted backend.

Tests that start a server on a free port are marked `integration` (as in tests/api); the others are `unit`.
"""

from __future__ import annotations

import asyncio
import re
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from certa.config import load_settings
from certa.core.budget_pool import PoolPolicy
from certa.core.commands import AskPool
from certa.core.errors import InvalidArgument
from certa.observability.telemetry import Telemetry
from certa.runtime.pool_gate import PoolGate
from certa.server import CertaServer
from certa.store.pools.memory import MemoryBudgetPools
from certa.testing.redis_server import RedisServer
from certa.testing.scripted_backend import ScriptedBackend
from certa.v1 import reasoning_pb2 as pb
from certa.v1 import reasoning_pb2_grpc as pb_grpc
from certa_triton_local.launcher import free_port
from tests.contract.chart.conftest import CHART
from tests.system.api.conftest import settings_for

QUESTION = "[[confident-after:100]] How many eggs does Janet sell?"
DYNASOR = pb.Strategy(dynasor_cot=pb.DynasorCot(chunk_tokens=32, certainty_threshold=2, probe_tokens=10))
CLIENT_TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{CLIENT_TRACE_ID}-{CLIENT_SPAN_ID}-01"
RPC_ATTRIBUTES = ("rpc.system", "rpc.service", "rpc.method", "rpc.grpc.status_code")
BATCH = pb.SolveBatchRequest(
    questions=[pb.BatchQuestion(id="a", question="Q"), pb.BatchQuestion(id="b", question="[[vote:18,7]] Q")],
    plain=pb.PlainCot(),
    sampling=pb.SamplingParams(temperature=0.8, seed=1),
    budget=pb.BatchBudget(samples=8),
    warmup=2,
)


@dataclass
class Observed:
    telemetry: Telemetry
    spans: InMemorySpanExporter
    metrics: InMemoryMetricReader


@pytest.fixture
def observed() -> Iterator[Observed]:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    yield Observed(Telemetry(tracer_provider, MeterProvider(metric_readers=[reader])), spans, reader)
    tracer_provider.shutdown()


async def serving(telemetry: Telemetry, redis_url: str = "") -> CertaServer:
    settings = settings_for({"scripted": "scripted://"}, redis_url)
    server = CertaServer(settings, {"scripted": ScriptedBackend()}, telemetry)
    await server.start()
    return server


@pytest.fixture
async def stub(observed: Observed) -> AsyncIterator[pb_grpc.ReasoningServiceStub]:
    server = await serving(observed.telemetry)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield pb_grpc.ReasoningServiceStub(channel)
    await server.stop()


async def solve(stub: pb_grpc.ReasoningServiceStub, **fields: Any) -> pb.SolveResponse:
    request = pb.SolveRequest(question=QUESTION, strategy=DYNASOR, token_budget=1000, **fields)
    return await stub.Solve(request, metadata=(("traceparent", TRACEPARENT),))  # type: ignore[no-any-return]


def by_name(spans: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return [span for span in spans if span.name == name]


def every_string(spans: tuple[ReadableSpan, ...]) -> list[str]:
    values: list[Any] = []
    for span in spans:
        values.extend((span.attributes or {}).values())
        for event in span.events:
            values.extend((event.attributes or {}).values())
    return [value for value in values if isinstance(value, str)]


@pytest.mark.integration
async def test_a_dynasor_request_is_one_span_tree_under_the_callers_trace(
    stub: pb_grpc.ReasoningServiceStub, observed: Observed
) -> None:
    response = await solve(stub)
    result = response.result
    spans = observed.spans.get_finished_spans()

    [server] = by_name(spans, "/certa.v1.ReasoningService/Solve")
    assert server.kind is SpanKind.SERVER
    assert format(server.context.trace_id, "032x") == CLIENT_TRACE_ID
    assert server.parent is not None and format(server.parent.span_id, "016x") == CLIENT_SPAN_ID
    assert {key: server.attributes[key] for key in RPC_ATTRIBUTES} == {
        "rpc.system": "grpc",
        "rpc.service": "certa.v1.ReasoningService",
        "rpc.method": "Solve",
        "rpc.grpc.status_code": 0,
    }
    [root] = by_name(spans, "certa.solve")
    assert root.parent is not None and root.parent.span_id == server.context.span_id
    assert dict(root.attributes or {}) == {
        "certa.request_id": response.request_id,
        "certa.strategy": "dynasor-cot",
        "certa.backend": "scripted",
        "certa.model": "scripted",
        "certa.token_budget": 1000,
        "certa.stop_reason": "certain",
        "certa.tokens.prompt": result.usage.prompt_tokens,
        "certa.tokens.path": result.usage.path_tokens,
        "certa.tokens.probe": result.usage.probe_tokens,
        "certa.tokens.cached": result.usage.cached_prompt_tokens,
        "certa.tokens.saved": result.tokens_saved_vs_budget,
        "certa.probes": len(result.probes),
        "certa.answer_classes": len(result.answer_classes),
        "certa.early_exit": True,
        "certa.early_exits": 1,
        "certa.early_exit.tokens.saved": 1000 - result.usage.path_tokens - result.usage.probe_tokens,
    }

    calls = by_name(spans, "text_completion scripted")
    assert {span.parent.span_id for span in calls if span.parent} == {root.context.span_id}
    assert len(calls) == len(spans) - 2
    assert {span.kind for span in calls} == {SpanKind.CLIENT}
    assert {(span.attributes["gen_ai.operation.name"], span.attributes["gen_ai.request.model"]) for span in calls} == {
        ("text_completion", "scripted")
    }
    assert {span.attributes["gen_ai.provider.name"] for span in calls} == {"_OTHER"}
    assert sum(span.attributes["gen_ai.usage.output_tokens"] for span in calls) == (
        result.usage.path_tokens + result.usage.probe_tokens
    )
    finished = [span for span in calls if not span.attributes["certa.cancelled"]]
    assert sum(span.attributes["gen_ai.usage.input_tokens"] for span in finished) == result.usage.prompt_tokens
    paths = [span for span in calls if span.attributes["certa.purpose"] == "path"]
    probes = [span for span in calls if span.attributes["certa.purpose"] == "probe"]
    assert len(probes) == len(result.probes)
    assert sum(span.attributes["certa.tokens.generated"] for span in paths) == result.usage.path_tokens
    assert sum(span.attributes["certa.tokens.generated"] for span in probes) == result.usage.probe_tokens
    assert {span.attributes["certa.max_tokens"] for span in probes} == {10}
    assert {span.attributes["certa.sample_index"] for span in calls} == {0}
    # The chunk generating while the last probe decided is cancelled by the early exit: not an error.
    cancelled = [span for span in paths if span.attributes["certa.cancelled"]]
    assert [span.attributes["certa.finish_reason"] for span in cancelled] == ["cancelled"]
    assert all(span.status.status_code is StatusCode.UNSET for span in calls)

    probe_events = [event for event in root.events if event.name == "certa.probe"]
    assert [event.attributes["certa.chunk_index"] for event in probe_events] == list(range(len(result.probes)))
    # Generated text stays out of spans unless the tenant opted in: the answer's size, not the answer.
    assert [event.attributes["certa.probe.answer_chars"] for event in probe_events] == [
        len(p.answer) for p in result.probes
    ]
    assert not any("certa.probe.answer" in event.attributes for event in probe_events)
    assert [event.attributes["certa.probe.confident"] for event in probe_events] == [
        p.confident for p in result.probes
    ]
    [decision] = [event for event in root.events if event.name == "certa.decision"]
    assert decision.attributes["certa.certainty_met"] is True

    strings = every_string(spans)
    assert not [value for value in strings if "Janet" in value or "step by step" in value]
    assert not [value for value in strings if result.text[:20] in value]


def points(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    data = reader.get_metrics_data()
    assert data is not None
    found: dict[str, list[Any]] = {}
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                found.setdefault(metric.name, []).extend(metric.data.data_points)
    return found


def value(found: dict[str, list[Any]], name: str, **attributes: str) -> Any:
    [point] = [p for p in found[name] if all(p.attributes.get(k) == v for k, v in attributes.items())]
    return point


@pytest.mark.integration
async def test_metrics_count_requests_tokens_probes_and_latency(
    stub: pb_grpc.ReasoningServiceStub, observed: Observed
) -> None:
    result = (await solve(stub)).result
    found = points(observed.metrics)
    assert value(found, "certa.requests", strategy="dynasor-cot", stop_reason="certain").value == 1
    assert value(found, "certa.requests.in_flight").value == 0
    assert value(found, "certa.tokens.generated", purpose="path").value == result.usage.path_tokens
    assert value(found, "certa.tokens.generated", purpose="probe").value == result.usage.probe_tokens
    assert value(found, "certa.tokens.saved", strategy="dynasor-cot").value == result.tokens_saved_vs_budget > 0
    assert value(found, "certa.probes").value == len(result.probes)
    assert value(found, "certa.early_exits").value == 1
    probes_to_exit = value(found, "certa.request.probes", stop_reason="certain")
    assert (probes_to_exit.count, probes_to_exit.sum) == (1, len(result.probes))
    latencies = found["certa.backend.call.duration"]
    calls = len(by_name(observed.spans.get_finished_spans(), "text_completion scripted"))
    assert sum(point.count for point in latencies) == calls
    assert {point.attributes["finish_reason"] for point in latencies} >= {"length", "cancelled"}

    genai = {"gen_ai.operation.name": "text_completion", "gen_ai.request.model": "scripted"}
    assert sum(point.count for point in found["gen_ai.client.operation.duration"]) == calls
    assert {tuple(sorted(point.attributes)) for point in found["gen_ai.client.operation.duration"]} == {
        ("gen_ai.operation.name", "gen_ai.provider.name", "gen_ai.request.model")
    }
    output = value(found, "gen_ai.client.token.usage", **genai, **{"gen_ai.token.type": "output"})
    assert (output.count, output.sum) == (calls, result.usage.path_tokens + result.usage.probe_tokens)
    assert value(found, "gen_ai.client.token.usage", **genai, **{"gen_ai.token.type": "input"}).count == calls
    saved = value(found, "certa.early_exit.tokens.saved", strategy="dynasor-cot").value
    assert saved == 1000 - result.usage.path_tokens - result.usage.probe_tokens > 0

    rpc = value(found, "rpc.server.duration", **{"rpc.method": "Solve", "rpc.service": "certa.v1.ReasoningService"})
    assert (rpc.count, rpc.attributes["rpc.system"], rpc.attributes["rpc.grpc.status_code"]) == (1, "grpc", 0)
    request = value(found, "certa.request.duration", rpc="Solve")
    assert (request.count, dict(request.attributes)) == (1, {"rpc": "Solve", "strategy": "dynasor-cot", "status": "OK"})
    assert request.sum * 1000 == pytest.approx(rpc.sum)


@pytest.mark.integration
async def test_a_failed_request_is_an_error_span_and_counted(
    stub: pb_grpc.ReasoningServiceStub, observed: Observed
) -> None:
    with pytest.raises(grpc.aio.AioRpcError):
        await stub.Solve(pb.SolveRequest(question="[[fail-after:40]] Q", strategy=DYNASOR))
    spans = observed.spans.get_finished_spans()
    [root] = by_name(spans, "certa.solve")
    assert root.status.status_code is StatusCode.ERROR
    assert root.attributes["error.type"] == "SolveInterrupted"
    assert root.attributes["certa.tokens.path"] >= 40
    calls = by_name(spans, "text_completion scripted")
    assert [span.attributes["error.type"] for span in calls if not span.status.is_ok]
    found = points(observed.metrics)
    assert value(found, "certa.requests", stop_reason="error").value == 1
    failed = value(found, "certa.request.duration", rpc="Solve")
    assert (failed.count, failed.attributes["status"]) == (1, "UNAVAILABLE")
    assert failed.attributes["strategy"] == "dynasor-cot"
    [server] = by_name(spans, "/certa.v1.ReasoningService/Solve")
    assert server.attributes["rpc.grpc.status_code"] == grpc.StatusCode.UNAVAILABLE.value[0]
    assert "error.type" in value(found, "gen_ai.client.operation.duration", **{"error.type": "BackendError"}).attributes


@pytest.mark.unit
def test_backend_metadata_carries_the_current_span(observed: Observed) -> None:
    telemetry = observed.telemetry
    assert telemetry.trace_metadata() == []
    with telemetry.tracer.start_as_current_span("outer") as span:
        context = span.get_span_context()
        [(key, traceparent)] = telemetry.trace_metadata()
        assert key == "traceparent"
        assert traceparent.startswith(f"00-{context.trace_id:032x}-{context.span_id:016x}-")


@pytest.mark.unit
def test_without_an_exporter_telemetry_is_a_no_op() -> None:
    for env in ({}, {"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"},
                {"OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none",
                 "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"}):
        telemetry = Telemetry.from_environment(env=env)
        with telemetry.tracer.start_as_current_span("x") as span:
            assert not span.is_recording()


@pytest.mark.unit
@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"},
         "OTEL_EXPORTER_OTLP_PROTOCOL"),
    ],
)
def test_unsupported_exporters_are_refused(env: dict[str, str], variable: str) -> None:
    with pytest.raises(InvalidArgument, match=variable):
        Telemetry.from_environment(env=env)


@pytest.mark.unit
def test_metrics_port_is_read_and_checked() -> None:
    local = {"CERTA_STORE": "memory", "CERTA_AUTH_DISABLED": "true"}
    assert load_settings(local).metrics_port == 0
    assert load_settings({**local, "CERTA_METRICS_PORT": "9464"}).metrics_port == 9464
    for bad in ("-1", "70000", "x"):
        with pytest.raises(InvalidArgument, match="CERTA_METRICS_PORT"):
            load_settings({**local, "CERTA_METRICS_PORT": bad})


@pytest.mark.integration
async def test_unreachable_collector_neither_slows_nor_fails_requests(
    monkeypatch: pytest.MonkeyPatch, redis_server: RedisServer
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "10")
    metrics_port = free_port()
    telemetry = Telemetry.from_environment(metrics_port=metrics_port)
    server = await serving(telemetry, redis_server.url)  # Redis: the store latency is charted too
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = pb_grpc.ReasoningServiceStub(channel)
            started = time.monotonic()
            for _ in range(3):
                assert (await solve(stub)).result.stop_reason == pb.STOP_REASON_CERTAIN
            assert time.monotonic() - started < 5
            async for _ in stub.SolveBatch(BATCH):  # the batch metrics, charted too
                pass
        telemetry.pool_decision("acme", "chat", mandatory=False, granted=2, level=1.0)  # pool metrics, charted too
        telemetry.pool_denied("acme", "chat")
        scrape = await asyncio.to_thread(
            lambda: urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
        )
    finally:
        await server.stop()
        await asyncio.to_thread(telemetry.shutdown)
    # The Prometheus names the chart (HPA, KEDA), the dashboard and README.md use.
    samples = [line for line in scrape.splitlines() if line and not line.startswith("#")]
    names = {line.split("{")[0].split(" ")[0] for line in samples}
    assert names >= {
        "certa_requests_total",
        "certa_requests_in_flight",
        "certa_tokens_generated_total",
        "certa_tokens_saved_total",
        "certa_probes_total",
        "certa_early_exits_total",
        "certa_request_probes_bucket",
        "certa_backend_call_duration_seconds_bucket",
        "certa_request_duration_seconds_bucket",
        "certa_early_exit_tokens_saved_total",
        "rpc_server_duration_milliseconds_bucket",
        "gen_ai_client_token_usage_bucket",
        "gen_ai_client_operation_duration_seconds_bucket",
        "certa_pool_samples_total",
        "certa_pool_denied_total",
        "certa_pool_level",
    }
    dashboard = (CHART / "dashboards" / "certa-dashboard.json").read_text()
    charted = re.findall(r"certa_[a-z_]+", dashboard + (CHART / "values.yaml").read_text())
    assert set(charted) <= names
    [requests] = [
        line for line in samples if line.startswith("certa_requests_total{") and 'strategy="dynasor-cot"' in line
    ]
    assert 'stop_reason="certain"' in requests and requests.endswith(" 3.0")


@pytest.mark.integration
async def test_multi_sample_metrics_record_certaindex_and_batch_spending(
    stub: pb_grpc.ReasoningServiceStub, observed: Observed
) -> None:
    sampled = pb.SamplingParams(temperature=0.8, seed=1)
    consistency = pb.Strategy(self_consistency=pb.SelfConsistency(plain=pb.PlainCot(), max_samples=10))
    solved = await stub.Solve(pb.SolveRequest(question="Q", strategy=consistency, sampling=sampled))
    events = [event async for event in stub.SolveBatch(BATCH)]
    summary = events[-1].result.batch
    found = points(observed.metrics)
    certaindex = {tuple(p.attributes.items()): p.count for p in found["certa.certaindex"]}
    assert certaindex[(("strategy", "self-consistency"),)] == len(solved.result.rounds)
    assert certaindex[(("strategy", "batch"),)] >= 2
    assert value(found, "certa.batch.samples").value == summary.samples_spent
    assert value(found, "certa.batch.tokens").value == summary.tokens_spent
    assert sum(p.count for p in found["certa.batch.question.samples"]) == 2


async def test_budget_pool_metrics_count_samples_spent_and_the_level_left(observed: Observed) -> None:
    pools, policy = MemoryBudgetPools(), PoolPolicy(samples_per_second=0.01, burst=3, max_wait_s=0.05)
    gate = PoolGate(pools, "acme", "chat", policy, "r1", observed.telemetry)
    assert await gate.ask(AskPool(2, 0, 1.0, mandatory=True)) == 2
    assert await gate.ask(AskPool(2, 2, 0.8)) == 0  # one sample left, a wave of two: refused after the wait
    found = points(observed.metrics)
    assert value(found, "certa.pool.samples", tenant="acme", pool="chat", wave="first").value == 2
    assert "more" not in {p.attributes["wave"] for p in found["certa.pool.samples"]}
    assert value(found, "certa.pool.level", tenant="acme", pool="chat").value == pytest.approx(1.0, abs=0.01)
    assert value(found, "certa.pool.denied", tenant="acme", pool="chat").value == 1
