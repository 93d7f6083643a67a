"""The composition root: settings → telemetry → store → backends → service → gRPC server with health, reflection
and drain.

Health: the empty service name reports the process (liveness); `certa.v1.ReasoningService` reports whether the
state store answers, the default backend is ready and JWT keys could be fetched (readiness), re-checked every
`READINESS_INTERVAL_S`; the log says which one is not. On SIGTERM the server turns NOT_SERVING, lets running
requests finish for up to `CERTA_DRAIN_TIMEOUT_S`, hands the rest to other replicas (their clients get UNAVAILABLE
with the partial result), and stops.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Mapping
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from certa.api.auth import Authenticator
from certa.api.grpc.access import AccessInterceptor
from certa.api.grpc.errors import ErrorMappingInterceptor
from certa.api.grpc.servicer import ReasoningServicer
from certa.api.http import HttpListener, OpenAiApi
from certa.api.tls import RotatingServerCredentials
from certa.backends.factory import build_backend, provider_name
from certa.backends.port import Backend
from certa.backends.url_options import UrlOptions
from certa.config import BackendSpec, Settings
from certa.core.errors import CertaError, InvalidArgument
from certa.observability.telemetry import Telemetry
from certa.service import SolveService
from certa.store import StateStore, build_budget_pools, build_quota_ledger, build_store
from certa.tenants import TenantPolicies
from certa.testing.scripted_backend import ScriptedBackend
from certa.v1 import reasoning_pb2, reasoning_pb2_grpc

log = logging.getLogger(__name__)

SERVICE_NAME = reasoning_pb2.DESCRIPTOR.services_by_name["ReasoningService"].full_name
READINESS_INTERVAL_S = 5.0
RPCS_PER_REQUEST = 4  # calls a running request may come with: its own, retries attached to it, GetSolve, Cancel
UNREQUESTED_CALL_TIMEOUT_S = 600


def build_backends(settings: Settings, telemetry: Telemetry | None = None) -> dict[str, Backend]:
    """One adapter per configured backend; each call carries the current span's `traceparent` to the server."""
    if not settings.backends:
        raise InvalidArgument(
            "CERTA_BACKENDS", "no backend configured, e.g. CERTA_BACKENDS=local=triton://127.0.0.1:8001"
        )
    telemetry = telemetry or Telemetry.disabled()
    backends: dict[str, Backend] = {}
    for spec in settings.backends:
        if spec.scheme == SCRIPTED_SCHEME:
            backends[spec.name] = scripted_backend(spec)
            continue
        backends[spec.name] = build_backend(
            spec, connect_timeout_s=settings.backend_connect_timeout_s, metadata_provider=telemetry.trace_metadata
        )
        telemetry.register_backend(spec.name, provider_name(spec))
    return backends


SCRIPTED_SCHEME = "scripted"


def scripted_backend(spec: BackendSpec) -> Backend:
    """`scripted://[?books=FILE&slots=N]`: the scripted model of `certa.testing` instead of a model server, for load
    campaigns (`make bench-load`, `make bench-fairness`) that measure the controller alone; `books` is where it writes
    what it generated when the server stops, `slots` how many calls it serves at once (0: no limit)."""
    options = UrlOptions(spec)
    books = options.optional_text("books")
    slots = options.optional_int("slots") or 0
    if slots < 0:
        options.fail(f"option slots={slots} must be >= 0")
    options.finish()
    return ScriptedBackend(name=spec.name, record=False, books_path=Path(books) if books else None, slots=slots)


def server_options(settings: Settings) -> list[tuple[str, int]]:
    """The gRPC server's channel arguments: connection age and keepalive from `settings.grpc` (see GrpcSettings)."""
    connection = settings.grpc
    grace_s = connection.max_connection_age_grace_s
    if grace_s is None:  # no call the API allows is cut by its connection's age
        grace_s = settings.max_deadline_s
    options = [
        # A saturated event loop picks new calls up slowly; gRPC's default would cancel them after 30 s.
        ("grpc.server_max_unrequested_time_in_server", UNREQUESTED_CALL_TIMEOUT_S),
        ("grpc.keepalive_time_ms", _milliseconds(connection.keepalive_time_s)),
        ("grpc.keepalive_timeout_ms", _milliseconds(connection.keepalive_timeout_s)),
        ("grpc.keepalive_permit_without_calls", int(connection.keepalive_permit_without_calls)),
        ("grpc.http2.min_ping_interval_without_data_ms", _milliseconds(connection.min_ping_interval_s)),
    ]
    if connection.max_connection_age_s > 0:
        options += [
            ("grpc.max_connection_age_ms", _milliseconds(connection.max_connection_age_s)),
            ("grpc.max_connection_age_grace_ms", _milliseconds(grace_s)),
        ]
    return options


def _milliseconds(seconds: float) -> int:
    """A gRPC duration argument: whole milliseconds, at least 1, at most a C int."""
    return min(max(round(seconds * 1000), 1), 2**31 - 1)


class CertaServer:
    """A running gRPC server around a `SolveService`. The telemetry stays its creator's to shut down."""

    def __init__(
        self,
        settings: Settings,
        backends: Mapping[str, Backend],
        telemetry: Telemetry | None = None,
        store: StateStore | None = None,
    ) -> None:
        self.settings = settings
        telemetry = telemetry or Telemetry.disabled()
        if not settings.auth.configured:
            raise InvalidArgument(
                "CERTA_AUTH_API_KEYS_FILE", "no authentication configured (or CERTA_AUTH_DISABLED=true for development)"
            )
        self.authenticator = authenticator = Authenticator(settings.auth)
        store = store or build_store(settings.store, telemetry.store_operation)
        self.service = SolveService(
            settings,
            backends,
            store,
            telemetry,
            quotas=build_quota_ledger(store, settings.store),
            pools=build_budget_pools(store),
            policies=TenantPolicies(settings.tenants_file),
        )
        self.health = health.aio.HealthServicer()
        self._server = grpc.aio.server(
            # Outermost first: the gRPC server span, then the access line and RPC metrics, then error mapping.
            interceptors=[telemetry.grpc_server_interceptor(), AccessInterceptor(telemetry), ErrorMappingInterceptor()],
            # Past this many calls at once, gRPC answers RESOURCE_EXHAUSTED at once rather than queueing them.
            maximum_concurrent_rpcs=RPCS_PER_REQUEST * settings.max_concurrent_requests,
            options=server_options(settings),
        )
        reasoning_pb2_grpc.add_ReasoningServiceServicer_to_server(
            ReasoningServicer(self.service, authenticator, settings, telemetry), self._server
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
            self._server,
        )
        credentials = RotatingServerCredentials(settings.tls).credentials if settings.tls.enabled else None
        self.port = _listen(self._server, settings.listen_address, "CERTA_LISTEN_ADDRESS", credentials)
        # Kubelet gRPC probes speak plaintext only: with TLS on, health can also be served on a plaintext port.
        self._health_server: grpc.aio.Server | None = None
        self.health_port = 0
        if settings.health_listen_address:
            self._health_server = grpc.aio.server()
            health_pb2_grpc.add_HealthServicer_to_server(self.health, self._health_server)
            self.health_port = _listen(
                self._health_server, settings.health_listen_address, "CERTA_HEALTH_LISTEN_ADDRESS", None
            )
        self._readiness: asyncio.Task[None] | None = None
        self.ready = False  # the readiness verdict, for the HTTP door's /readyz
        # The OpenAI-compatible HTTP door, on the same service and event loop (CERTA_HTTP_PORT; 0: none).
        self._http: HttpListener | None = None
        if settings.http_listen_address:
            api = OpenAiApi(self.service, authenticator, settings, telemetry, ready=lambda: self.ready)
            self._http = HttpListener(api.application(), settings.http_listen_address, settings.tls)

    @property
    def http_port(self) -> int:
        """The HTTP door's port once started (0: none)."""
        return self._http.port if self._http is not None else 0

    async def start(self) -> None:
        await self.authenticator.start()
        await self._server.start()
        if self._health_server is not None:
            await self._health_server.start()
        if self._http is not None:
            await self._http.start()
        await self.health.set("", health_pb2.HealthCheckResponse.SERVING)
        await self._check_readiness()
        self._readiness = asyncio.create_task(self._watch_readiness())
        self.service.start()
        log.info(
            "certa listening on port %d%s (replica %s, store %s)",
            self.port,
            f", OpenAI-compatible HTTP on port {self.http_port}" if self._http is not None else "",
            self.service.replica_id,
            self.service.store.name,
        )

    async def _check_readiness(self) -> None:
        """Ready when the store, the default backend and the JWT keys (from a JWKS URL) are; a failed check means
        not ready, and the watch goes on."""
        backend = self.service.backends[self.settings.default_backend_name]
        problem = self.authenticator.readiness_problem
        if problem is not None:
            log.warning("not ready: %s", problem)
            await self._set_ready(False)
            return
        try:
            await self.service.store.ping()
            await backend.check_ready()
        except CertaError as error:
            log.warning("not ready: %s", error)
            await self._set_ready(False)
            return
        except Exception:
            log.exception("not ready: the readiness check of backend %r failed unexpectedly", backend.name)
            await self._set_ready(False)
            return
        await self._set_ready(True)

    async def _set_ready(self, ready: bool) -> None:
        self.ready = ready
        status = health_pb2.HealthCheckResponse.SERVING if ready else health_pb2.HealthCheckResponse.NOT_SERVING
        await self.health.set(SERVICE_NAME, status)

    async def _watch_readiness(self) -> None:
        while True:
            await asyncio.sleep(READINESS_INTERVAL_S)
            await self._check_readiness()

    async def stop(self) -> None:
        """Drain: stop being ready, let running requests finish (bounded), then stop."""
        if self._readiness is not None:
            self._readiness.cancel()
        self.ready = False
        await self.health.enter_graceful_shutdown()
        await self.service.drain(self.settings.drain_timeout_s)
        await self._server.stop(grace=5.0)
        if self._http is not None:
            await self._http.stop()
        if self._health_server is not None:
            await self._health_server.stop(grace=None)
        for backend in self.service.backends.values():
            await backend.close()
        await self.service.close()
        await self.authenticator.close()


def _listen(server: grpc.aio.Server, address: str, variable: str, credentials: grpc.ServerCredentials | None) -> int:
    try:
        if credentials is None:
            return server.add_insecure_port(address)
        return server.add_secure_port(address, credentials)
    except RuntimeError as error:  # grpc's way of saying the address cannot be bound
        raise InvalidArgument(variable, f"cannot listen on {address!r} ({error})") from error


async def serve(settings: Settings) -> None:
    """Run the server until SIGTERM or SIGINT, then drain."""
    telemetry = Telemetry.from_environment(settings.metrics_port)
    try:
        await _serve(settings, telemetry)
    finally:
        await asyncio.to_thread(telemetry.shutdown)


async def _serve(settings: Settings, telemetry: Telemetry) -> None:
    server = CertaServer(settings, build_backends(settings, telemetry), telemetry)
    await server.start()
    stop_requested = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop_requested.set)
    await stop_requested.wait()
    log.info("draining: up to %.0fs for %d running requests", settings.drain_timeout_s, server.service.in_flight())
    await server.stop()
