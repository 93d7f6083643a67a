"""The application service: turns validated requests into runs, and keeps runs findable by id.

A run is one request being solved: an asyncio task driving a strategy, the events it produced (replayed to every
`SolveStream` subscriber from the start), and its final report or error. Runs live in this process; finished runs
are kept for `GetSolve` up to `RETAINED_RUNS`, oldest dropped first, without their events once nobody follows them.

Request ids are idempotency keys: a request whose id is known attaches to that run when its validated parameters
are the same (a finished run answers with its result, a failed one with its error), and is a `Conflict` otherwise.
A sampled request (temperature > 0) without a seed gets a random one, so samples differ even on servers whose own
default seed is fixed (TensorRT-LLM's is 0).
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum

from certa.api.validation import SolveSpec, validate
from certa.backends.base import Backend
from certa.config import Settings
from certa.core.errors import CertaError, Conflict, NotFound, Overloaded, ShuttingDown, SolveInterrupted
from certa.core.strategies import build_strategy, strategy_name
from certa.core.types import StopReason
from certa.prompts import question_prompt, resolve_template
from certa.runtime.driver import Driver, RuntimeEvent
from certa.runtime.report import SolveReport
from certa.telemetry import Telemetry, TraceContext
from certa.v1 import reasoning_pb2 as pb

log = logging.getLogger(__name__)

RETAINED_RUNS = 10_000


class RunStatus(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass
class Run:
    """One request being solved (or solved)."""

    spec: SolveSpec
    key: SolveSpec  # the validated parameters without the id, for idempotency checks
    strategy: str
    backend: str
    model: str
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    status: RunStatus = RunStatus.RUNNING
    report: SolveReport | None = None
    error: CertaError | None = None
    events: list[RuntimeEvent] = field(default_factory=list)
    cancel: asyncio.Event = field(default_factory=asyncio.Event)
    stopped_by_shutdown: bool = False
    driver: Driver | None = None
    task: asyncio.Task[None] | None = None
    _waiters: list[asyncio.Future[None]] = field(default_factory=list)
    _followers: int = 0

    @property
    def request_id(self) -> str:
        return self.spec.request_id

    @property
    def done(self) -> bool:
        return self.status is not RunStatus.RUNNING

    @property
    def partial(self) -> SolveReport | None:
        """The report so far: final when done, the interrupted run's partial report when it failed."""
        if self.report is not None:
            return self.report
        if isinstance(self.error, SolveInterrupted):
            return self.error.partial  # type: ignore[no-any-return]
        if not self.done and self.driver is not None:
            return self.driver.snapshot()
        return None

    def record(self, event: RuntimeEvent) -> None:
        self.events.append(event)
        self._notify()

    def _notify(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def _changed(self) -> None:
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        await waiter

    def finish(self, status: RunStatus, report: SolveReport | None, error: CertaError | None) -> None:
        self.status, self.report, self.error = status, report, error
        self.driver = None
        self._notify()
        self._forget_events()

    def _forget_events(self) -> None:
        """A finished run keeps its result, not its per-token events, once no subscriber is replaying them."""
        if self.done and self._followers == 0:
            self.events = []

    async def wait(self) -> None:
        while not self.done:
            await self._changed()

    async def follow(self) -> AsyncIterator[RuntimeEvent]:
        """Every event of the run from the first, then new ones as they come, until the run is done.

        A subscriber that arrives after the run finished gets no events, only the result.
        """
        cursor = 0
        self._followers += 1
        try:
            while True:
                while cursor < len(self.events):
                    cursor += 1
                    yield self.events[cursor - 1]
                if self.done:
                    return
                await self._changed()
        finally:
            self._followers -= 1
            self._forget_events()


class SolveService:
    """Starts, finds and cancels runs."""

    def __init__(
        self,
        settings: Settings,
        backends: Mapping[str, Backend],
        telemetry: Telemetry | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._settings = settings
        self._backends = dict(backends)
        self._rng = rng or random.Random()
        self._draining = False
        self._telemetry = telemetry or Telemetry.disabled()
        self._runs: OrderedDict[str, Run] = OrderedDict()
        self._templates: dict[tuple[str, str], str | None] = {}

    @property
    def backends(self) -> Mapping[str, Backend]:
        return self._backends

    def in_flight(self) -> int:
        return sum(1 for run in self._runs.values() if not run.done)

    async def submit(
        self,
        request: pb.SolveRequest,
        trace_context: TraceContext | None = None,
        client_deadline_s: float | None = None,
    ) -> Run:
        """Start solving `request`, or return the run already registered under its request id.

        The run's span is a child of `trace_context` (the caller's, from its `traceparent`) when given. A client
        whose own gRPC deadline is shorter than the request's gets that one, so it still receives partial results.
        """
        if self._draining:
            raise ShuttingDown("this replica is shutting down; retry on another one")
        spec = validate(request, self._settings, request.request_id or uuid.uuid4().hex)
        key = replace(spec, request_id="")
        existing = self._runs.get(spec.request_id) if request.request_id else None
        if existing is not None:
            if existing.key != key:
                raise Conflict(
                    f"request id {request.request_id!r} is already used by a request with different parameters; "
                    "use a new id or resend the original request"
                )
            return existing
        if self.in_flight() >= self._settings.max_concurrent_requests:
            raise Overloaded(
                f"{self._settings.max_concurrent_requests} requests are already in flight on this replica; retry later"
            )
        if client_deadline_s is not None:
            spec = replace(spec, deadline_s=max(min(spec.deadline_s, client_deadline_s), 0.001))
        if spec.sampling.seed is None and not spec.sampling.greedy:
            spec = replace(spec, sampling=replace(spec.sampling, seed=self._rng.randrange(2**63)))
        backend = self._backends[spec.backend]
        model = spec.model or backend.default_model
        run = Run(spec=spec, key=key, strategy=str(strategy_name(spec.strategy)), backend=spec.backend, model=model)
        self._remember(run)  # before the first await, so a concurrent retry attaches and counts as in flight
        try:
            prompt = spec.text if spec.raw_prompt else await self._question_prompt(backend, model, spec.text)
        except CertaError as error:
            run.finish(RunStatus.FAILED, None, error)
            raise
        run.driver = Driver(
            backend, model, token_budget=spec.token_budget, on_event=run.record, telemetry=self._telemetry
        )
        strategy = build_strategy(spec.strategy, (prompt,), spec.token_budget, spec.sampling)
        run.task = asyncio.create_task(self._execute(run, run.driver, strategy, trace_context))
        return run

    async def _execute(  # type: ignore[no-untyped-def]
        self, run: Run, driver: Driver, strategy, trace_context: TraceContext | None
    ) -> None:
        with self._telemetry.solve(
            request_id=run.request_id,
            strategy=run.strategy,
            backend=run.backend,
            model=run.model,
            token_budget=run.spec.token_budget,
            parent=trace_context,
        ) as observed:
            try:
                report = await driver.run(strategy, deadline_s=run.spec.deadline_s, cancel=run.cancel)
            except CertaError as error:
                log.warning("request %s failed: %s", run.request_id, error)
                observed.failed(error)
                run.finish(RunStatus.FAILED, None, error)
                return
            except Exception:  # a bug: recorded on the run (INTERNAL for its client) and logged with its trace
                log.exception("request %s failed unexpectedly", run.request_id)
                run.finish(RunStatus.FAILED, None, CertaError("internal error; the server log has the details"))
                return
            observed.finished(report)
        if report.stop_reason is StopReason.CANCELLED and run.stopped_by_shutdown:
            cause = ShuttingDown("the replica shut down before the request finished; retry it")
            run.finish(RunStatus.FAILED, None, SolveInterrupted(str(cause), partial=report, cause=cause))
            return
        status = RunStatus.CANCELLED if report.stop_reason is StopReason.CANCELLED else RunStatus.SUCCEEDED
        run.finish(status, report, None)

    async def _question_prompt(self, backend: Backend, model: str, question: str) -> str:
        key = (backend.name, model)
        if key not in self._templates:
            published = await backend.chat_template(model) if self._settings.prompt_template == "auto" else None
            self._templates[key] = resolve_template(self._settings.prompt_template, published)
        return question_prompt(question, self._settings.instruction, self._templates[key])

    def _remember(self, run: Run) -> None:
        self._runs[run.request_id] = run
        while len(self._runs) > RETAINED_RUNS:
            oldest_id, oldest = next(iter(self._runs.items()))
            if not oldest.done:
                break
            del self._runs[oldest_id]

    def get(self, request_id: str) -> Run:
        run = self._runs.get(request_id)
        if run is None:
            raise NotFound(f"no request with id {request_id!r} (unknown, or expired)")
        return run

    def cancel(self, request_id: str) -> bool:
        """Ask a running request to stop; False when it had already finished."""
        run = self.get(request_id)
        if run.done:
            return False
        run.cancel.set()
        return True

    async def drain(self, timeout_s: float) -> None:
        """Refuse new requests, wait for running ones to finish, then stop what is left (UNAVAILABLE + partial)."""
        self._draining = True
        tasks = [run.task for run in self._runs.values() if run.task is not None and not run.done]
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=timeout_s)
        for run in self._runs.values():
            if not run.done:
                run.stopped_by_shutdown = True
                run.cancel.set()
        if pending:
            await asyncio.wait(pending)

