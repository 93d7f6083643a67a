"""The requests this replica runs: launching a run (or resuming one from its journal), checkpointing it, keeping its
lease, and recording how it ended.

A run ends in one of three ways (`RunState`): its outcome is recorded in the store (the stored status says which);
its lease went to another replica, which continues it; or it ended here but its outcome could not be written (the
store was down, or the replica drained), so its client learns the outcome from this replica only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from certa.backends.port import Backend
from certa.core.errors import (
    CertaError,
    LeaseLost,
    ShuttingDown,
    SolveInterrupted,
    StoreUnavailable,
)
from certa.core.report import SolveReport
from certa.core.spec import SolveSpec
from certa.core.strategies import SelfConsistencySpec
from certa.core.types import StopReason
from certa.observability.logs import bind_request
from certa.observability.telemetry import Telemetry, TraceContext
from certa.runtime.driver import Driver
from certa.runtime.fair_queue import FairBackend, FairQueue
from certa.runtime.journal import Recorder, Reply, decode_reply
from certa.runtime.pool_gate import PoolGate
from certa.service.admission import Admission
from certa.service.planning import Planner
from certa.store.pools.port import BudgetPools
from certa.store.requests import values
from certa.store.requests.codec import failure_of
from certa.store.requests.port import Claim, RequestKey, StateStore, Status, StoredRequest
from certa.tenants import TenantPolicies

log = logging.getLogger(__name__)

REMOTE_POLL_S = 0.2
"""How often a follower of a request running on another replica reads its event stream."""


class RunState(StrEnum):
    RUNNING = "running"
    RECORDED = "recorded"  # its outcome is in the store
    HANDED_OVER = "handed_over"  # its lease went to another replica, which continues it
    UNRECORDED = "unrecorded"  # it ended here, but its outcome could not be written (store down, or drained)


@dataclass
class LocalRun:
    """A request this replica runs (it holds the lease)."""

    key: RequestKey
    stored: StoredRequest
    recorder: Recorder = field(init=False)
    driver: Driver | None = None
    cancel: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    heartbeat: asyncio.Task[None] | None = None
    state: RunState = RunState.RUNNING
    report: SolveReport | None = None  # set with the final state: the result of a run that was not interrupted
    recorded_status: Status | None = None  # the status its outcome was recorded with (state `RECORDED`)
    error: CertaError | None = None  # set with the final state: why the run failed
    lease_lost: bool = False  # the heartbeat found another replica holding the lease
    stopped_by_shutdown: bool = False  # cancelled because the replica drains, not by its client
    followers: int = 0  # clients streaming its events from this replica (they get text sooner)
    _waiters: list[asyncio.Future[None]] = field(default_factory=list)
    _ended: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def done(self) -> bool:
        return self.state is not RunState.RUNNING

    def notify(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def changed(self, timeout_s: float) -> None:
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(waiter, timeout_s)

    async def wait(self) -> None:
        """Until the run ends (no polling: a request in flight for a minute would wake its waiter 300 times)."""
        await self._ended.wait()

    def conclude(self, state: RunState, report: SolveReport | None, error: CertaError | None) -> None:
        self.report, self.error, self.state = report, error, state
        self._ended.set()
        self.notify()


def _snapshot(run: LocalRun) -> SolveReport | None:
    return run.driver.snapshot() if run.driver is not None else None


class Runs:
    """Runs requests whose lease this replica holds, and resumes orphans (requests nobody holds the lease of)."""

    def __init__(
        self,
        *,
        backends: Mapping[str, Backend],
        store: StateStore,
        owner: str,
        lease_s: float,
        planner: Planner,
        admission: Admission,
        policies: TenantPolicies,
        pools: BudgetPools,
        telemetry: Telemetry,
        call_queues: Mapping[str, FairQueue] | None = None,
    ) -> None:
        self._backends = backends
        self._store = store
        self._owner = owner
        self._lease_s = lease_s
        self._planner = planner
        self._admission = admission
        self._policies = policies
        self._pools = pools
        self._telemetry = telemetry
        self._call_queues = call_queues or {}
        self.local: dict[RequestKey, LocalRun] = {}
        self.draining = False

    def in_flight(self) -> int:
        return sum(1 for run in self.local.values() if not run.done)

    def launch(self, stored: StoredRequest, claim: Claim, trace_context: TraceContext | None = None) -> None:
        """Run (or resume, from `claim`'s journal) a request whose lease this replica holds."""
        key = stored.record.key
        run = LocalRun(key=key, stored=stored)
        run.recorder = Recorder(
            self._store,
            key,
            self._owner,
            writes=claim.writes,
            summarize=lambda: values.encode(run.driver.snapshot()) if run.driver is not None else b"",
            on_written=run.notify,
            followed=lambda: run.followers > 0,
        )
        self.local[key] = run
        run.task = asyncio.create_task(self._execute(run, claim, trace_context))
        run.heartbeat = asyncio.create_task(self._heartbeat(run))

    async def adopt_if_orphaned(self, stored: StoredRequest) -> None:
        """Resume a running request nobody holds the lease of."""
        key = stored.record.key
        if stored.status is not Status.RUNNING or stored.owner or key in self.local or self.draining:
            return
        claim = await self._store.claim(key, self._owner)
        if claim is None:
            return
        log.info("resuming request %s (attempt %d) from its checkpoint", key, claim.request.attempt)
        self.launch(claim.request, claim)

    async def _execute(self, run: LocalRun, claim: Claim, trace_context: TraceContext | None) -> None:
        bind_request(request_id=run.key.request_id, tenant=run.key.tenant)  # for every line of this run's task
        stored = run.stored
        record = stored.record
        try:
            spec = values.decode(record.request, SolveSpec, f"{run.key}:meta")
            label = f"{run.key}:journal"
            replay = [decode_reply(label, index, raw) for index, raw in enumerate(claim.journal)]
            strategy = await self._planner.strategy(spec, record.model, record.prompt)
            pool_policy = self._admission.pool_policy(run.key.tenant, spec.strategy)
        except CertaError as error:
            log.warning("request %s cannot be resumed: %s", run.key, error)
            await self._conclude(run, None, error)
            return
        resumed = stored.attempt > 1
        tenant = run.key.tenant
        gate = None
        if pool_policy is not None and isinstance(spec.strategy, SelfConsistencySpec):
            gate = PoolGate(self._pools, tenant, spec.strategy.pool, pool_policy, run.key.request_id, self._telemetry)

        async def checkpoint(reply: Reply) -> bool:
            cancel = await run.recorder.checkpoint(reply)
            self._admission.spend(tenant, reply.outcome.tokens)
            return cancel

        backend = self._backends[spec.backend]
        queue = self._call_queues.get(spec.backend)
        if queue is not None:
            backend = FairBackend(backend, queue, tenant, self._policies.of(tenant).weight)
        run.driver = Driver(
            backend,
            record.model,
            token_budget=spec.token_budget,
            on_event=run.recorder.event,
            on_text=run.recorder.text,
            telemetry=self._telemetry,
            replay=replay,
            checkpoint=checkpoint,
            resumed_attempt=stored.attempt if resumed else 0,
            elapsed_before_s=max(time.time() - record.created_at, 0.0) if resumed else 0.0,
            log_content=self._policies.of(tenant).log_content,
            pool=gate.ask if gate is not None else None,
        )
        if stored.cancel_requested:
            run.cancel.set()
        with self._telemetry.solve(
            request_id=run.key.request_id,
            strategy=record.strategy,
            backend=spec.backend,
            model=record.model,
            token_budget=spec.token_budget,
            parent=trace_context,
        ) as observed:
            try:
                try:
                    report = await run.driver.run(
                        strategy, deadline_s=max(record.deadline_at - time.time(), 0.001), cancel=run.cancel
                    )
                finally:
                    if gate is not None:
                        await asyncio.shield(self._close_pool_gate(gate, run.driver))
            except CertaError as error:
                log.warning("request %s failed: %s", run.key, error)
                observed.failed(error)
                await self._conclude(run, None, error)
                return
            except Exception:  # a bug: recorded on the request (INTERNAL for its client) and logged with its trace
                log.exception("request %s failed unexpectedly", run.key)
                await self._conclude(run, None, CertaError("internal error; the server log has the details"))
                return
            observed.finished(report)
        await self._conclude(run, report, None)

    async def _close_pool_gate(self, gate: PoolGate, driver: Driver) -> None:
        """Leave the pool's waiting set and book the request's tokens; if the store is down, the waiter goes stale
        by itself (in seconds) and only the pool's token statistics miss this request."""
        usage = driver.snapshot().usage
        try:
            await gate.close(usage.path_tokens + usage.probe_tokens)
        except StoreUnavailable as error:
            log.warning("budget pool not updated at the end of a request: %s", error)

    async def _conclude(self, run: LocalRun, report: SolveReport | None, error: CertaError | None) -> None:
        """Record the outcome in the store (unless the lease was lost or the replica drains), then locally."""
        state = RunState.UNRECORDED
        if run.heartbeat is not None:  # before the final write, which ends the lease the heartbeat renews
            run.heartbeat.cancel()
        try:
            cause = error.cause if isinstance(error, SolveInterrupted) else error
            if (run.lease_lost or isinstance(cause, LeaseLost)) and await self._record_lost(run.key):
                partial = report or getattr(error, "partial", None) or _snapshot(run)
                lost = StoreUnavailable(
                    f"request {run.key}: its record vanished from the state store while it ran (the store lost its "
                    "data); the partial result is kept, and a retry under the same id starts over"
                )
                error, report = SolveInterrupted(str(lost), partial=partial, cause=lost), None
                return
            if run.lease_lost or isinstance(cause, LeaseLost):
                state = RunState.HANDED_OVER
                log.info("request %s continues on another replica", run.key)
                return
            if report is not None and report.outcome.stop_reason is StopReason.CANCELLED and run.stopped_by_shutdown:
                shutdown = ShuttingDown("the replica shut down before the request finished; retry it")
                error, report = SolveInterrupted(str(shutdown), partial=report, cause=shutdown), None
                await run.recorder.release()
                return
            if isinstance(cause, StoreUnavailable):
                return
            partial = report if report is not None else getattr(error, "partial", None)
            summary = values.encode(partial) if partial is not None else b""
            final = Status.FAILED
            if report is not None:
                final = Status.CANCELLED if report.outcome.stop_reason is StopReason.CANCELLED else Status.SUCCEEDED
            await run.recorder.finish(final, summary, failure_of(error) if error is not None else None)
            state, run.recorded_status = RunState.RECORDED, final
            await self._admission.release(run.key.tenant, run.key.request_id)
        except LeaseLost:
            state = RunState.HANDED_OVER
        except StoreUnavailable as store_error:  # the outcome itself could not be written
            state = RunState.UNRECORDED
            if error is None:
                error = SolveInterrupted(str(store_error), partial=report, cause=store_error)
                report = None
        finally:
            await run.recorder.close()
            if self.local.get(run.key) is run:
                del self.local[run.key]
            run.conclude(state, report, error)

    async def _record_lost(self, key: RequestKey) -> bool:
        """Whether a run that lost its lease lost its record too (a store restarted without its data), rather than
        being taken over by another replica."""
        try:
            return await self._store.read(key) is None
        except CertaError:  # unreachable or unreadable: another replica may well hold it
            return False

    async def _heartbeat(self, run: LocalRun) -> None:
        """Keep the lease while the run goes on; notice a cancellation asked on another replica."""
        while True:
            await asyncio.sleep(self._lease_s / 3)
            try:
                if await run.recorder.renew():
                    run.cancel.set()
            except LeaseLost:
                log.warning("request %s: lease lost; another replica continues it", run.key)
                run.lease_lost = True
                run.cancel.set()
                return
            except StoreUnavailable as error:
                log.warning("request %s: cannot renew its lease: %s", run.key, error)

    async def drain(self, timeout_s: float) -> None:
        """Wait for running requests to finish, then stop the rest so other replicas continue them."""
        self.draining = True
        tasks = [run.task for run in self.local.values() if run.task is not None and not run.done]
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=timeout_s)
        for run in list(self.local.values()):
            if not run.done:
                run.stopped_by_shutdown = True
                run.cancel.set()
        if pending:
            await asyncio.wait(pending)
