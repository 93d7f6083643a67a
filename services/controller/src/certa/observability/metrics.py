"""Certa's own metric instruments (`certa.*`) and the Prometheus endpoint that serves every instrument."""

from __future__ import annotations

from collections.abc import Callable

from opentelemetry import metrics
from opentelemetry.sdk.metrics.export import MetricReader

LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
STORE_LATENCY_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
CERTAINDEX_BUCKETS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0)
PROBE_BUCKETS = (0, 1, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 50, 100)


class CertaMetrics:
    """Certa's own instruments (`certa.*`); their Prometheus names are in docs/operations.md."""

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
        self.early_exit_tokens_saved = meter.create_counter(
            "certa.early_exit.tokens.saved",
            description="Budget early-exited paths left unspent: their token budget less their path and probe tokens",
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
        self.sweep_skipped = meter.create_counter(
            "certa.sweep.skipped",
            description="In-flight records the sweep could not read and skipped, by reason (newer schema, unreadable)",
        )
        self.store_duration = meter.create_histogram(
            "certa.store.operation.duration",
            unit="s",
            description="State store (Redis) operation latency, by operation",
            explicit_bucket_boundaries_advisory=STORE_LATENCY_BUCKETS_S,
        )


def prometheus_endpoint(port: int) -> tuple[MetricReader, Callable[[], None]]:
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
