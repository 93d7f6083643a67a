"""Traces and metrics (OpenTelemetry): the only module of Certa that imports opentelemetry.

A `Telemetry` holds one tracer, the metric instruments and the W3C trace-context propagator. The composition root
builds it from the standard `OTEL_*` variables (`Telemetry.from_environment`) and injects it into the service, the
driver and the servicer; tests build one over an in-memory exporter and reader. Without an exporter (or with
`OTEL_SDK_DISABLED=true`) the providers are OpenTelemetry's no-op ones, so instrumentation costs next to nothing.

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
from contextlib import contextmanager
from dataclasses import dataclass, field

from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Span, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

from certa.core.commands import Decision, QuestionFinished
from certa.core.errors import CertaError, DeadlineExceeded, InvalidArgument, SolveInterrupted
from certa.core.report import SolveReport
from certa.core.types import FinishReason, GenerationRequest, ProbeRecord, StopReason

DEFAULT_SERVICE_NAME = "certa"
PROBE_ANSWER_MAX_CHARS = 32  # a probe's extracted answer (e.g. "18") is kept; anything longer is cut
LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
STORE_LATENCY_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
CERTAINDEX_BUCKETS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0)
PROBE_BUCKETS = (0, 1, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 50, 100)

TraceContext = otel_context.Context


class _Instruments:
    """The metric instruments; their Prometheus names are in README.md ("Observe")."""

    def __init__(self, meter: metrics.Meter) -> None:
        self.requests = meter.create_counter("certa.requests", description="Finished requests by stop reason")
        self.in_flight = meter.create_up_down_counter("certa.requests.in_flight", description="Requests running")
        self.in_flight.add(0)  # exported from the start: autoscalers query it before the first request
        self.tokens_generated = meter.create_counter(
            "certa.tokens.generated", description="Tokens generated, cancelled calls included, by purpose"
        )
        self.tokens_saved = meter.create_counter(
            "certa.tokens.saved", description="Path tokens not generated compared with the full token budget"
        )
        self.probes = meter.create_counter("certa.probes", description="Certainty probes taken")
        self.early_exits = meter.create_counter("certa.early_exits", description="Paths stopped because certain")
        self.probes_per_request = meter.create_histogram(
            "certa.request.probes",
            description="Probes per request (with stop_reason=certain: probes to an early exit)",
            explicit_bucket_boundaries_advisory=PROBE_BUCKETS,
        )
        self.backend_duration = meter.create_histogram(
            "certa.backend.call.duration",
            unit="s",
            description="Backend call latency, from start to last token (or cancellation)",
            explicit_bucket_boundaries_advisory=LATENCY_BUCKETS_S,
        )
        self.certaindex = meter.create_histogram(
            "certa.certaindex",
            description="Certaindex after each round of a multi-sample strategy (1: every answer agrees)",
            explicit_bucket_boundaries_advisory=CERTAINDEX_BUCKETS,
        )
        self.batch_samples = meter.create_counter("certa.batch.samples", description="Samples batches drew")
        self.batch_tokens = meter.create_counter(
            "certa.batch.tokens", description="Tokens batches generated (paths and probes)"
        )
        self.question_samples = meter.create_histogram(
            "certa.batch.question.samples",
            description="Samples one question of a batch got before it was retired, by retire reason",
            explicit_bucket_boundaries_advisory=PROBE_BUCKETS,
        )
        self.pool_samples = meter.create_counter(
            "certa.pool.samples",
            description="Samples budget pools granted (spent), by tenant, pool and wave (first: mandatory; more)",
        )
        self.pool_denied = meter.create_counter(
            "certa.pool.denied",
            description="Waves a request gave up on because its budget pool had none within its wait",
        )
        self.pool_level = meter.create_gauge(
            "certa.pool.level",
            description="Samples left in a budget pool (remaining; below 0: first waves drawn into debt)",
        )
        self.store_duration = meter.create_histogram(
            "certa.store.operation.duration",
            unit="s",
            description="State store (Redis) operation latency, by operation",
            explicit_bucket_boundaries_advisory=STORE_LATENCY_BUCKETS_S,
        )


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
        self.outcome = str(report.stop_reason)
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
        self.tracer = (tracer_provider or trace.NoOpTracerProvider()).get_tracer("certa")
        self._metrics = _Instruments((meter_provider or metrics.NoOpMeterProvider()).get_meter("certa"))
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
            reader, stop_server = _prometheus_endpoint(metrics_port)
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

    # -- trace context -------------------------------------------------------------------------------------------

    def extract(self, metadata: Sequence[tuple[str, str | bytes]] | None) -> TraceContext:
        """The caller's W3C trace context from gRPC metadata (an empty context when there is none)."""
        carrier = {key: value for key, value in metadata or () if isinstance(value, str)}
        return self._propagator.extract(carrier)

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
        early_exits = sum(1 for sample in report.samples if sample.stop_reason is StopReason.CERTAIN)
        solve.span.set_attributes(
            {
                "certa.tokens.prompt": usage.prompt_tokens,
                "certa.tokens.path": usage.path_tokens,
                "certa.tokens.probe": usage.probe_tokens,
                "certa.tokens.cached": usage.cached_prompt_tokens,
                "certa.tokens.saved": report.tokens_saved_vs_budget,
                "certa.probes": len(report.probes),
                "certa.answer_classes": len(report.answer_classes),
                "certa.early_exit": early_exits > 0,
                "certa.early_exits": early_exits,
            }
        )
        strategy = {"strategy": solve.strategy}
        self._metrics.tokens_saved.add(report.tokens_saved_vs_budget, strategy)
        self._metrics.probes.add(len(report.probes), strategy)
        self._metrics.early_exits.add(early_exits, strategy)
        self._metrics.probes_per_request.record(len(report.probes), labels)
        for round_ in report.rounds:
            self._metrics.certaindex.record(round_.certaindex, strategy)
        if report.batch is not None:
            self._metrics.batch_samples.add(report.batch.samples)
            self._metrics.batch_tokens.add(report.batch.generated_tokens)

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

    def store_operation(self, operation: str, seconds: float) -> None:
        """Latency of one state store operation (checkpoint writes are `append`)."""
        self._metrics.store_duration.record(seconds, {"operation": operation})

    # -- backend calls -------------------------------------------------------------------------------------------

    @contextmanager
    def backend_call(self, backend: str, request: GenerationRequest) -> Iterator[CallSpan]:
        """The `certa.generate` span around one backend call (current inside it, so `trace_metadata` sends its
        context to the server), its latency and its tokens. A cancelled call is not an error."""
        purpose = str(request.purpose)
        call = CallSpan()
        started = time.perf_counter()
        cancelled = False
        with self.tracer.start_as_current_span(
            "certa.generate",
            attributes={
                "certa.backend": backend,
                "certa.purpose": purpose,
                "certa.sample_index": request.sample_index,
                "certa.max_tokens": request.max_tokens,
            },
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                yield call
            except asyncio.CancelledError:
                cancelled = True
                raise
            except Exception as error:
                span.set_status(Status(StatusCode.ERROR, type(error).__name__))
                span.set_attribute("error.type", type(error).__name__)
                raise
            finally:
                finish = FinishReason.CANCELLED if cancelled else call.finish
                finish_label = str(finish) if finish is not None else "error"
                span.set_attributes(
                    {
                        "certa.tokens.generated": call.tokens,
                        "certa.tokens.prompt": call.prompt_tokens,
                        "certa.finish_reason": finish_label,
                        "certa.cancelled": cancelled,
                    }
                )
                self._metrics.tokens_generated.add(call.tokens, {"purpose": purpose, "backend": backend})
                self._metrics.backend_duration.record(
                    time.perf_counter() - started,
                    {"purpose": purpose, "backend": backend, "finish_reason": finish_label},
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


def _prometheus_endpoint(port: int) -> tuple[MetricReader, Callable[[], None]]:
    """A Prometheus reader on its own registry, served at http://0.0.0.0:PORT/metrics from a daemon thread."""
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from prometheus_client import CollectorRegistry, start_http_server

    registry = CollectorRegistry(auto_describe=True)
    reader = PrometheusMetricReader(registry=registry)
    server, thread = start_http_server(port, registry=registry)

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    return reader, stop
