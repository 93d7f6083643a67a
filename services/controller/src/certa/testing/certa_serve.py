"""A `certa serve` child process on a free loopback port, for tests and benchmarks: the controller in its own process
(so a load generator shares neither its event loop nor its core), configured by `CERTA_*` variables, as a pod is."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from certa.testing.redis_server import free_port
from certa.v1 import reasoning_pb2

SERVICE_NAME = reasoning_pb2.DESCRIPTOR.services_by_name["ReasoningService"].full_name

STOP_TIMEOUT_S = 30.0


class CertaServe:
    """`certa serve` on a free loopback port with `backends` (`CERTA_BACKENDS`), its state in Redis at `redis_url`
    under `prefix`, and `settings` (more `CERTA_*` variables, which win); ready to serve once constructed.

    This process's own `CERTA_*` and `OTEL_*` variables are left out. Authentication is off (the tenant comes from
    `x-certa-tenant`), logs are text in `log_path`, a stop drains for a second at most, and tracing is off.
    """

    def __init__(
        self, backends: str, redis_url: str, prefix: str, log_path: Path, settings: Mapping[str, str] | None = None
    ) -> None:
        self.port = free_port()
        self.log_path = log_path
        environment = {
            "CERTA_LISTEN_ADDRESS": self.address,
            "CERTA_BACKENDS": backends,
            "CERTA_REDIS_URL": redis_url,
            "CERTA_REDIS_KEY_PREFIX": prefix,
            "CERTA_AUTH_DISABLED": "true",
            "CERTA_LOG_FORMAT": "text",
            "CERTA_DRAIN_TIMEOUT_S": "1",
            "OTEL_SDK_DISABLED": "true",
            **(settings or {}),
        }
        certa = Path(sys.executable).parent / "certa"
        inherited = {key: value for key, value in os.environ.items() if not key.startswith(("CERTA_", "OTEL_"))}
        with open(log_path, "wb") as log:
            self.process = subprocess.Popen(
                [str(certa), "serve"], env={**inherited, **environment}, stdout=log, stderr=subprocess.STDOUT
            )
        self._wait_serving()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL, as a node failure does: no drain."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM: the controller drains and exits; killed, and an error raised, when it has not within 30 s."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.kill()
                raise RuntimeError(f"controller did not stop on SIGTERM:\n{tail(self.log_path)}") from None

    def _wait_serving(self, timeout_s: float = 60.0) -> None:
        """Wait until the controller reports its readiness service SERVING."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"controller exited with {self.process.returncode}:\n{tail(self.log_path)}")
            with grpc.insecure_channel(self.address) as channel:
                try:
                    status = (
                        health_pb2_grpc.HealthStub(channel)
                        .Check(health_pb2.HealthCheckRequest(service=SERVICE_NAME), timeout=1)
                        .status
                    )
                except grpc.RpcError:
                    status = None
            if status == health_pb2.HealthCheckResponse.SERVING:
                return
            time.sleep(0.1)
        raise RuntimeError(f"controller at {self.address} not ready after {timeout_s:g}s:\n{tail(self.log_path)}")


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
