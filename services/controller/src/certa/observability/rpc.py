"""Per-RPC metrics: `rpc.server.duration` by the OpenTelemetry RPC conventions, and Certa's request duration.

OpenTelemetry's gRPC instrumentation for Python makes the server span but records no metrics, so the RPC duration
histogram is recorded here, with the conventions' name, unit (milliseconds) and attributes (`rpc.system`,
`rpc.service`, `rpc.method`, `rpc.grpc.status_code`). `certa.request.duration` (Prometheus:
`certa_request_duration_seconds`) is the same duration in seconds, labelled for dashboards by `rpc` (the method
name), `strategy` (empty for calls that name none, e.g. GetSolve) and `status` (the gRPC status code's name). The
HTTP door records it too (`certa.api.http.access`), with `rpc` its `METHOD route` and `status` the name of the
gRPC code the same outcome has over gRPC, so one query covers both doors and the `rpc` label tells them apart.
"""

from __future__ import annotations

import grpc
from opentelemetry import metrics

# The conventions' advised boundaries for rpc.server.duration (milliseconds).
RPC_DURATION_BUCKETS_MS = (0, 5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000)
REQUEST_DURATION_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600)


class RpcMetrics:
    def __init__(self, meter: metrics.Meter) -> None:
        self._rpc_duration = meter.create_histogram(
            "rpc.server.duration",
            unit="ms",
            description="Duration of inbound RPCs",
            explicit_bucket_boundaries_advisory=RPC_DURATION_BUCKETS_MS,
        )
        self._request_duration = meter.create_histogram(
            "certa.request.duration",
            unit="s",
            description="Duration of Certa's RPCs and HTTP requests, by rpc, strategy and status",
            explicit_bucket_boundaries_advisory=REQUEST_DURATION_BUCKETS_S,
        )

    def record(self, full_method: str, status: grpc.StatusCode, duration_s: float, strategy: str) -> None:
        """One finished RPC; `full_method` is gRPC's `/package.Service/Method`."""
        service, _, method = full_method.lstrip("/").rpartition("/")
        self._rpc_duration.record(
            duration_s * 1000,
            {
                "rpc.system": "grpc",
                "rpc.service": service,
                "rpc.method": method,
                "rpc.grpc.status_code": status.value[0],
            },
        )
        self.request(method, strategy, status.name, duration_s)

    def request(self, rpc: str, strategy: str, status: str, duration_s: float) -> None:
        """`certa.request.duration` alone, for either door: `rpc` is a gRPC method name (`Solve`) or an HTTP
        `METHOD route` (`POST /v1/chat/completions`), `status` a gRPC status code's name."""
        self._request_duration.record(duration_s, {"rpc": rpc, "strategy": strategy, "status": status})
