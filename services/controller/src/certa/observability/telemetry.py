"""Traces and metrics (OpenTelemetry) behind one facade; `certa.observability` is the only package that imports
opentelemetry.

A `Telemetry` holds one tracer, the metric instruments and the W3C trace-context propagator. The composition root
builds it from the standard `OTEL_*` variables (`Telemetry.from_environment`) and injects it into the service, the
driver and the servicer; tests build one over an in-memory exporter and reader. Without an exporter (or with
`OTEL_SDK_DISABLED=true`) the providers are OpenTelemetry's no-op ones, so instrumentation costs next to nothing.

Names follow the OpenTelemetry semantic conventions where one exists: the gRPC server span and its `rpc.*`
attributes come from OpenTelemetry's gRPC instrumentation (`grpc_server_interceptor`), the RPC metrics from
`observability.rpc`; the HTTP door's SERVER spans and `http.server.request.duration` follow the HTTP conventions
(`observability.http`); a backend call is a CLIENT span with `gen_ai.*` attributes and the GenAI client metrics
(`observability.genai`). Certa's own attributes and metrics (`observability.metrics`) are under `certa.*`.

Exporting never slows a request: spans go through a `BatchSpanProcessor` (bounded queue, `OTEL_BSP_*`; spans are
dropped when it is full) and metrics through a periodic reader, both exporting from background threads.

Privacy: attributes carry sizes, counts and ids, never prompt or generated text; a probe's extracted answer is
added only for tenants whose policy opts in (`log_content`, see `certa.tenants`).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field

import grpc
from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import INVALID_SPAN, Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

from certa.core.commands import Decision, QuestionFinished
from certa.core.errors import CertaError, DeadlineExceeded, InvalidArgument, SolveInterrupted
from certa.core.report import SolveReport
from certa.core.types import FinishReason, GenerationRequest, ProbeRecord, StopReason, StrategyResult
from certa.observability import genai
from certa.observability.genai import GenAiClientMetrics
from certa.observability.http import HttpRequestInfo, HttpServerCall, HttpServerMetrics, end_span
from certa.observability.metrics import CertaMetrics, prometheus_endpoint
from certa.observability.rpc import RpcMetrics

DEFAULT_SERVICE_NAME = "certa"
PROBE_ANSWER_MAX_CHARS = 32  # a probe's extracted answer (e.g. "18") is kept; anything longer is cut

TraceContext = otel_context.Context


@dataclass
class CallSpan:
    """What the driver reports about one backend call before it ends."""

    tokens: int = 0
    prompt_tokens: int = 0
    finish: FinishReason | None = None

    def settle(self, tokens: int, prompt_tokens: int, finish: FinishReason | None) -> None:
        self.tokens, self.prompt_tokens, self.finish = tokens, prompt_tokens, finish


@dataclass
class SolveSpan:
    """The span of one request; the service reports the outcome through it."""

    span: Span
    strategy: str
    outcome: str = ""
    report: SolveReport | None = field(default=None, repr=False)

    def finished(self, report: SolveReport) -> None:
        self.outcome = str(report.outcome.stop_reason)
        self.report = report

    def failed(self, error: CertaError) -> None:
        self.outcome = "deadline" if isinstance(error, DeadlineExceeded) else "error"
        self.span.set_status(Status(StatusCode.ERROR, type(error).__name__))
        self.span.set_attribute("error.type", type(error).__name__)
        if isinstance(error, SolveInterrupted):
            self.report = error.partial


class Telemetry:
    """Tracer, metric instruments and trace-context propagation, injected through the composition root."""

    def __init__(
        self,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
        *,
        on_shutdown: Sequence[Callable[[], object]] = (),
    ) -> None:
        self._tracer_provider = tracer_provider or trace.NoOpTracerProvider()
        self._tracing = tracer_provider is not None  # off: per-call spans and their attributes are not built
        self.tracer = self._tracer_provider.get_tracer("certa")
        meter = (meter_provider or metrics.NoOpMeterProvider()).get_meter("certa")
        self._metrics = CertaMetrics(meter)
        self._genai = GenAiClientMetrics(meter)
        self.rpc = RpcMetrics(meter)
        self._http = HttpServerMetrics(meter)
        self._providers: dict[str, str] = {}
        self._propagator = TraceContextTextMapPropagator()
        self._on_shutdown = tuple(on_shutdown)

    @classmethod
    def disabled(cls) -> Telemetry:
        return cls()

    @classmethod
    def from_environment(cls, metrics_port: int = 0, env: Mapping[str, str] | None = None) -> Telemetry:
        """Providers as the `OTEL_*` variables ask, plus a Prometheus endpoint on `metrics_port` (0: none).

        Traces (metrics) go to OTLP/gRPC when `OTEL_TRACES_EXPORTER` (`OTEL_METRICS_EXPORTER`) is `otlp`, or is
        unset and an OTLP endpoint is configured; `none` turns a signal off. The exporters read their endpoint,
        headers, timeout and TLS settings from the process environment, as the OpenTelemetry SDK specifies.
        """
        env = os.environ if env is None else env
        if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
            return cls()
        traces = _exporter_wanted(env, "TRACES")
        otlp_metrics = _exporter_wanted(env, "METRICS")
        if (traces or otlp_metrics) and env.get("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc") != "grpc":
            raise InvalidArgument("OTEL_EXPORTER_OTLP_PROTOCOL", "Certa exports OTLP over gRPC only: use grpc")
        resource = _resource()
        tracer_provider = None
        on_shutdown: list[Callable[[], object]] = []
        if traces:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

            tracer_provider = TracerProvider(resource=resource)
            tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
            on_shutdown.append(tracer_provider.shutdown)
        readers: list[MetricReader] = []
        if otlp_metrics:
            from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

            readers.append(PeriodicExportingMetricReader(OTLPMetricExporter()))
        if metrics_port:
            reader, stop_server = prometheus_endpoint(metrics_port)
            readers.append(reader)
            on_shutdown.append(stop_server)
        meter_provider = None
        if readers:
            meter_provider = MeterProvider(resource=resource, metric_readers=readers)
            on_shutdown.insert(0, meter_provider.shutdown)
        return cls(tracer_provider, meter_provider, on_shutdown=on_shutdown)

    def shutdown(self) -> None:
        """Flush and stop exporters (blocking: up to the exporters' timeouts when a collector is unreachable)."""
        for stop in self._on_shutdown:
            stop()

    def grpc_server_interceptor(self) -> grpc.aio.ServerInterceptor:
        """OpenTelemetry's gRPC server instrumentation on this telemetry's tracer: one SERVER span per RPC with the
        `rpc.*` attributes, a child of the caller's W3C trace context."""
        from opentelemetry.instrumentation.grpc import aio_server_interceptor

        return aio_server_interceptor(tracer_provider=self._tracer_provider)

    def register_backend(self, name: str, provider: str) -> None:
        """The `gen_ai.provider.name` of backend `name`'s calls (see `certa.observability.genai`)."""
        self._providers[name] = provider

    # -- trace context -------------------------------------------------------------------------------------------

    def current_context(self) -> TraceContext:
        """The active context (inside an RPC: its server span), for work that continues in another task."""
        return otel_context.get_current()

    @contextmanager
    def http_server(self, request: HttpRequestInfo, headers: Mapping[str, str]) -> Iterator[HttpServerCall]:
        """The SERVER span of one HTTP request (current inside it; a child of the caller's W3C `traceparent`, read
        from `headers`, whose lookups must ignore case) and its `http.server.request.duration`, by the HTTP
        conventions (`certa.observability.http`). The door sets the call's status code (or failure) before it ends."""
        parent = self._propagator.extract(headers)
        with self.tracer.start_as_current_span(
            request.span_name,
            context=parent,
            kind=SpanKind.SERVER,
            attributes=request.span_attributes(),
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            call = HttpServerCall(span, time.perf_counter())
            try:
                yield call
            except asyncio.CancelledError:
                call.cancelled = True
                raise
            except Exception as error:
                call.failure = call.failure or type(error).__name__
                raise
            finally:
                end_span(call)
                self._http.record(request, call)

    def trace_metadata(self) -> list[tuple[str, str]]:
        """The current span's W3C `traceparent` (and `tracestate`): the backends' `metadata_provider`."""
        carrier: dict[str, str] = {}
        self._propagator.inject(carrier)
        return list(carrier.items())

    # -- requests ------------------------------------------------------------------------------------------------

    @contextmanager
    def solve(
        self,
        *,
        request_id: str,
        strategy: str,
        backend: str,
        model: str,
        token_budget: int,
        parent: TraceContext | None,
    ) -> Iterator[SolveSpan]:
        """The `certa.solve` span around one run (current while it runs), its in-flight count and its metrics."""
        attributes: dict[str, AttributeValue] = {
            "certa.request_id": request_id,
            "certa.strategy": strategy,
            "certa.backend": backend,
            "certa.model": model,
            "certa.token_budget": token_budget,
        }
        self._metrics.in_flight.add(1)
        try:
            with self.tracer.start_as_current_span("certa.solve", context=parent, attributes=attributes) as span:
                solve = SolveSpan(span, strategy)
                try:
                    yield solve
                except Exception as error:
                    solve.outcome = "error"
                    span.set_attribute("error.type", type(error).__name__)
                    raise
                finally:
                    self._record_solve(solve)
        finally:
            self._metrics.in_flight.add(-1)

    def _record_solve(self, solve: SolveSpan) -> None:
        labels = {"strategy": solve.strategy, "stop_reason": solve.outcome}
        self._metrics.requests.add(1, labels)
        solve.span.set_attribute("certa.stop_reason", solve.outcome)
        report = solve.report
        if report is None:
            return
        usage = report.usage
        result = report.outcome if isinstance(report.outcome, StrategyResult) else None  # None: interrupted
        samples = result.samples if result is not None else ()
        early_exits = sum(1 for sample in samples if sample.stop_reason is StopReason.CERTAIN)
        solve.span.set_attributes(
            {
                "certa.tokens.prompt": usage.prompt_tokens,
                "certa.tokens.path": usage.path_tokens,
                "certa.tokens.probe": usage.probe_tokens,
                "certa.tokens.cached": usage.cached_prompt_tokens,
                "certa.tokens.saved": report.tokens_saved_vs_budget,
                "certa.probes": len(report.probes),
                "certa.answer_classes": len(result.answer_classes) if result is not None else 0,
                "certa.early_exit": early_exits > 0,
                "certa.early_exits": early_exits,
            }
        )
        strategy = {"strategy": solve.strategy}
        self._metrics.tokens_saved.add(report.tokens_saved_vs_budget, strategy)
        if early_exits and result is not None and result.batch is None:
            unspent = sum(
                max(report.token_budget - sample.path_tokens - sample.probe_tokens, 0)
                for sample in samples
                if sample.stop_reason is StopReason.CERTAIN
            )
            solve.span.set_attribute("certa.early_exit.tokens.saved", unspent)
            self._metrics.early_exit_tokens_saved.add(unspent, strategy)
        self._metrics.probes.add(len(report.probes), strategy)
        self._metrics.early_exits.add(early_exits, strategy)
        self._metrics.probes_per_request.record(len(report.probes), labels)
        if result is None:
            return
        for round_ in result.rounds:
            self._metrics.certaindex.record(round_.certaindex, strategy)
        if result.batch is not None:
            self._metrics.batch_samples.add(result.batch.samples)
            self._metrics.batch_tokens.add(result.batch.generated_tokens)

    def probe(self, record: ProbeRecord, chunk_index: int, log_content: bool = False) -> None:
        """A `certa.probe` event on the current (request) span."""
        trace.get_current_span().add_event(
            "certa.probe",
            {
                "certa.sample_index": record.sample_index,
                "certa.chunk_index": chunk_index,
                "certa.position_tokens": record.position_tokens,
                "certa.probe.confident": record.confident,
                "certa.probe.tokens": record.tokens,
                "certa.probe.answer_chars": len(record.answer),
                **({"certa.probe.answer": record.answer[:PROBE_ANSWER_MAX_CHARS]} if log_content else {}),
            },
        )

    def question_finished(self, event: QuestionFinished) -> None:
        """A `certa.question` event on the (batch) request's span: one question is final."""
        self._metrics.question_samples.record(len(event.result.samples), {"retire_reason": str(event.reason)})
        for round_ in event.result.rounds:
            self._metrics.certaindex.record(round_.certaindex, {"strategy": "batch"})
        trace.get_current_span().add_event(
            "certa.question",
            {
                "certa.question_id": event.question_id,
                "certa.retire_reason": str(event.reason),
                "certa.samples": len(event.result.samples),
                "certa.tokens.generated": event.generated_tokens,
            },
        )

    def decision(self, decision: Decision) -> None:
        """A `certa.decision` event on the current (request) span: a path stopped, and why."""
        trace.get_current_span().add_event(
            "certa.decision",
            {
                "certa.sample_index": decision.sample_index,
                "certa.stop_reason": str(decision.stop_reason),
                "certa.certainty_met": decision.stop_reason is StopReason.CERTAIN,
            },
        )

    def pool_decision(self, tenant: str, pool: str, mandatory: bool, granted: int, level: float) -> None:
        """One answer of a budget pool: samples spent (when granted) and the level it left (remaining)."""
        labels = {"tenant": tenant, "pool": pool}
        self._metrics.pool_level.set(level, labels)
        if granted:
            self._metrics.pool_samples.add(granted, {**labels, "wave": "first" if mandatory else "more"})

    def pool_denied(self, tenant: str, pool: str) -> None:
        self._metrics.pool_denied.add(1, {"tenant": tenant, "pool": pool})

    def sweep_skipped(self, reason: str) -> None:
        self._metrics.sweep_skipped.add(1, {"reason": reason})

    def store_operation(self, operation: str, seconds: float) -> None:
        """Latency of one state store operation (checkpoint writes are `append`)."""
        self._metrics.store_duration.record(seconds, {"operation": operation})

    # -- backend calls -------------------------------------------------------------------------------------------

    @contextmanager
    def backend_call(self, backend: str, model: str, request: GenerationRequest) -> Iterator[CallSpan]:
        """The CLIENT span around one backend call (current inside it, so `trace_metadata` sends its context to the
        server), named and attributed by the GenAI conventions, with Certa's details under `certa.*`; its latency
        and tokens as metrics. A cancelled call is not an error."""
        purpose = str(request.purpose)
        provider = self._providers.get(backend, genai.OTHER_PROVIDER)
        call = CallSpan()
        started = time.perf_counter()
        cancelled = False
        error_type: str | None = None
        opened: AbstractContextManager[Span] = nullcontext(INVALID_SPAN)
        if self._tracing:
            opened = self.tracer.start_as_current_span(
                genai.span_name(model),
                kind=SpanKind.CLIENT,
                attributes={
                    **genai.request_attributes(provider, model, request.max_tokens),
                    "certa.backend": backend,
                    "certa.purpose": purpose,
                    "certa.sample_index": request.sample_index,
                    "certa.max_tokens": request.max_tokens,
                },
                record_exception=False,
                set_status_on_exception=False,
            )
        with opened as span:
            try:
                yield call
            except asyncio.CancelledError:
                cancelled = True
                raise
            except Exception as error:
                error_type = type(error).__name__
                span.set_status(Status(StatusCode.ERROR, error_type))
                span.set_attribute("error.type", error_type)
                raise
            finally:
                finish = FinishReason.CANCELLED if cancelled else call.finish
                finish_label = str(finish) if finish is not None else "error"
                if self._tracing:
                    span.set_attributes(
                        {
                            "gen_ai.usage.input_tokens": call.prompt_tokens,
                            "gen_ai.usage.output_tokens": call.tokens,
                            "gen_ai.response.finish_reasons": (finish_label,),
                            "certa.tokens.generated": call.tokens,
                            "certa.tokens.prompt": call.prompt_tokens,
                            "certa.finish_reason": finish_label,
                            "certa.cancelled": cancelled,
                        }
                    )
                duration_s = time.perf_counter() - started
                self._metrics.tokens_generated.add(call.tokens, {"purpose": purpose, "backend": backend})
                self._metrics.backend_duration.record(
                    duration_s, {"purpose": purpose, "backend": backend, "finish_reason": finish_label}
                )
                self._genai.record(
                    provider=provider,
                    model=model,
                    input_tokens=call.prompt_tokens,
                    output_tokens=call.tokens,
                    duration_s=duration_s,
                    error_type=error_type,
                )


def _exporter_wanted(env: Mapping[str, str], signal: str) -> bool:
    """Whether `signal` (TRACES or METRICS) goes to OTLP: asked for, or left unset with an endpoint configured."""
    variable = f"OTEL_{signal}_EXPORTER"
    exporter = env.get(variable, "").strip().lower()
    if exporter == "":
        return bool(env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get(f"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT"))
    if exporter not in ("otlp", "none"):
        raise InvalidArgument(variable, f"must be otlp or none, got {exporter!r}")
    return exporter == "otlp"


def _resource() -> Resource:
    """`OTEL_SERVICE_NAME` / `OTEL_RESOURCE_ATTRIBUTES`, with service.name `certa` when neither names one."""
    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: DEFAULT_SERVICE_NAME}))
    return resource
