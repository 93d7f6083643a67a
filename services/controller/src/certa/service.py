"""The application service: turns validated requests into runs, and makes every request reachable from any replica.

A request lives in the state store (`certa.store`): its record, its journal of checkpoints, its event stream and
the lease of the replica running it. A replica runs the requests whose lease it holds (`LocalRun`); any replica
can report on, follow, cancel or resume any request of the same tenant:

* `submit` creates the record and starts the run here. A request id that exists already is an idempotent retry:
  with the same validated parameters it attaches to that request (running or finished), otherwise `Conflict`.
* `follow` replays the request's event stream from the start, then its result (or raises its error).
* `describe` (GetSolve) and `cancel` read and flag the record; the owner sees a cancellation at its next
  checkpoint or heartbeat.
* A running request whose lease expired (its replica died) is **resumed** here from its last checkpoint when a
  client asks for it (`submit` retry, `follow`, `describe`, `cancel`) or when the background sweep finds it.

A sampled request (temperature > 0) without a seed gets a random one, stored with it, so samples differ even on
servers whose default seed is fixed (TensorRT-LLM's is 0) and a resumed request continues with the same seed.
On drain, runs still going after the timeout give their lease back (their clients get UNAVAILABLE with the
partial result) and another replica continues them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field, replace

from google.protobuf.message import DecodeError
from google.protobuf.timestamp_pb2 import Timestamp

from certa.api.mapping import event_to_proto, report_to_proto
from certa.api.validation import SolveSpec, validate, validate_batch
from certa.backends.port import Backend
from certa.config import Settings, default_replica_id
from certa.core.budget_pool import PoolPolicy
from certa.core.commands import Strategy
from certa.core.errors import (
    CertaError,
    Conflict,
    CorruptState,
    InvalidArgument,
    LeaseLost,
    NotFound,
    Overloaded,
    QuotaExceeded,
    ShuttingDown,
    SolveInterrupted,
    StoreUnavailable,
)
from certa.core.report import SolveReport
from certa.core.strategies import (
    BatchSpec,
    MajorityVoteSpec,
    SelfConsistencySpec,
    StrategyName,
    build_batch,
    build_strategy,
    strategy_name,
)
from certa.core.types import StopReason
from certa.observability.telemetry import Telemetry, TraceContext
from certa.prompts import question_prompt, resolve_template
from certa.runtime.driver import Driver
from certa.runtime.journal import Recorder, Reply, decode_reply
from certa.runtime.pool_gate import PoolGate
from certa.store.pools.memory import MemoryBudgetPools
from certa.store.pools.port import BudgetPools
from certa.store.quotas.memory import MemoryQuotaLedger
from certa.store.quotas.port import QuotaLedger
from certa.store.requests.codec import failure_of, restore_error
from certa.store.requests.port import (
    Claim,
    Created,
    Existing,
    NewRequest,
    RequestKey,
    StateStore,
    Status,
    StoredRequest,
)
from certa.tenants import TenantPolicies
from certa.v1 import reasoning_pb2 as pb

log = logging.getLogger(__name__)

REMOTE_POLL_S = 0.2
"""How often a follower of a request running on another replica reads its event stream."""

_STATUS = {
    Status.RUNNING: pb.SOLVE_STATUS_RUNNING,
    Status.SUCCEEDED: pb.SOLVE_STATUS_SUCCEEDED,
    Status.FAILED: pb.SOLVE_STATUS_FAILED,
    Status.CANCELLED: pb.SOLVE_STATUS_CANCELLED,
}


def requested_tokens(spec: SolveSpec) -> int:
    """The most path tokens a request may generate (for the tokens-per-request limit)."""
    strategy = spec.strategy
    if isinstance(strategy, BatchSpec):
        budget = strategy.allocator.budget
        by_samples = budget.samples * strategy.allocator.sample_max_tokens if budget.samples else None
        return min(value for value in (budget.tokens, by_samples) if value is not None)
    if isinstance(strategy, MajorityVoteSpec):
        return spec.token_budget * strategy.n
    if isinstance(strategy, SelfConsistencySpec):
        return spec.token_budget * strategy.max_samples
    return spec.token_budget


def parameters_fingerprint(key: SolveSpec) -> str:
    """Identifies a request's validated parameters (without its id), to tell a retry from a conflicting reuse."""
    return hashlib.sha256(repr(key).encode()).hexdigest()


@dataclass
class LocalRun:
    """A request this replica runs (it holds the lease)."""

    key: RequestKey
    stored: StoredRequest
    recorder: Recorder = field(init=False)
    spec: SolveSpec | None = None
    driver: Driver | None = None
    cancel: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    heartbeat: asyncio.Task[None] | None = None
    status: Status = Status.RUNNING
    report: SolveReport | None = None
    error: CertaError | None = None
    lost: bool = False  # the lease went to another replica, which continues the request
    unrecorded: bool = False  # the outcome could not be written to the store (store down, or drained)
    stopped_by_shutdown: bool = False
    concluded: bool = False  # set last, once status, report, error and the flags above are final
    _waiters: list[asyncio.Future[None]] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return self.concluded

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
        while not self.done:
            await self.changed(REMOTE_POLL_S)


class SolveService:
    """Starts, follows, describes, cancels and resumes requests."""

    def __init__(
        self,
        settings: Settings,
        backends: Mapping[str, Backend],
        store: StateStore,
        telemetry: Telemetry | None = None,
        rng: random.Random | None = None,
        quotas: QuotaLedger | None = None,
        policies: TenantPolicies | None = None,
        pools: BudgetPools | None = None,
    ) -> None:
        self._settings = settings
        self._backends = dict(backends)
        self._store = store
        self._quotas = quotas or MemoryQuotaLedger()
        self._policies = policies or TenantPolicies()
        self._pools = pools or MemoryBudgetPools()
        self._rng = rng or random.Random()
        self._telemetry = telemetry or Telemetry.disabled()
        self._owner = settings.store.replica_id or default_replica_id()
        self._lease_s = settings.store.lease_s
        self._draining = False
        self._local: dict[RequestKey, LocalRun] = {}
        self._templates: dict[tuple[str, str], str | None] = {}
        self._sweeper: asyncio.Task[None] | None = None

    @property
    def backends(self) -> Mapping[str, Backend]:
        return self._backends

    @property
    def store(self) -> StateStore:
        return self._store

    @property
    def replica_id(self) -> str:
        return self._owner

    def in_flight(self) -> int:
        return sum(1 for run in self._local.values() if not run.done)

    def start(self) -> None:
        """Start the sweep that resumes requests whose replica died."""
        self._sweeper = asyncio.create_task(self._sweep_forever())

    # -- submit -------------------------------------------------------------------------------------------------

    async def submit(
        self,
        request: pb.SolveRequest | pb.SolveBatchRequest,
        tenant: str,
        trace_context: TraceContext | None = None,
        client_deadline_s: float | None = None,
    ) -> StoredRequest:
        """Start solving `request`, or attach to the request already stored under its id.

        The run's span is a child of `trace_context` (the caller's, from its `traceparent`) when given. A client
        whose own gRPC deadline is shorter than the request's gets that one, so it still receives partial results.
        """
        if self._draining:
            raise ShuttingDown("this replica is shutting down; retry on another one")
        check = validate_batch if isinstance(request, pb.SolveBatchRequest) else validate
        spec = check(request, self._settings, request.request_id or uuid.uuid4().hex)  # type: ignore[arg-type]
        key = RequestKey(tenant, spec.request_id)
        fingerprint = parameters_fingerprint(replace(spec, request_id=""))
        if request.request_id:
            existing = await self._store.read(key)
            if existing is not None:
                return await self._attach(existing, fingerprint)
        if self.in_flight() >= self._settings.max_concurrent_requests:
            raise Overloaded(
                f"{self._settings.max_concurrent_requests} requests are already in flight on this replica; retry later"
            )
        policy = self._policies.of(tenant)
        self._pool_policy(tenant, spec.strategy)
        requested = requested_tokens(spec)
        if policy.max_tokens_per_request and requested > policy.max_tokens_per_request:
            raise QuotaExceeded(
                f"the request may generate {requested} tokens, over tenant {tenant!r}'s limit of "
                f"{policy.max_tokens_per_request} tokens per request"
            )
        questions = len(spec.strategy.questions) if isinstance(spec.strategy, BatchSpec) else 0
        if policy.max_batch_size and questions > policy.max_batch_size:
            raise QuotaExceeded(
                f"{questions} questions exceed tenant {tenant!r}'s limit of {policy.max_batch_size} per batch"
            )
        await self._quotas.admit(tenant, spec.request_id, policy.max_in_flight, policy.tokens_per_minute)
        try:
            created = await self._create(request, spec, key, fingerprint, client_deadline_s)
        except BaseException:
            await asyncio.shield(self._release_quota(tenant, spec.request_id))  # it never started
            raise
        if isinstance(created, Existing):  # a concurrent retry created it first
            if created.request.status is not Status.RUNNING:
                await self._release_quota(tenant, spec.request_id)
            return await self._attach(created.request, fingerprint)
        self._launch(created.request, Claim(created.request, journal=(), writes=0), trace_context)
        return created.request

    async def _create(
        self,
        request: pb.SolveRequest | pb.SolveBatchRequest,
        spec: SolveSpec,
        key: RequestKey,
        fingerprint: str,
        client_deadline_s: float | None,
    ) -> Created | Existing:
        """Write the request's record: its parameters as run (deadline, seed, backend, model) and its prompt."""
        if client_deadline_s is not None:
            spec = replace(spec, deadline_s=max(min(spec.deadline_s, client_deadline_s), 0.001))
        if spec.sampling.seed is None and not spec.sampling.greedy:
            spec = replace(spec, sampling=replace(spec.sampling, seed=self._rng.randrange(2**63)))
        backend = self._backends[spec.backend]
        model = spec.model or backend.default_model
        if isinstance(spec.strategy, BatchSpec):
            prompt = ""  # one per question, rendered when the batch runs
        elif spec.raw_prompt:
            prompt = spec.text
        else:
            prompt = await self._question_prompt(backend, model, spec.text)
        stored_request = type(request)()
        stored_request.CopyFrom(request)
        stored_request.request_id, stored_request.backend, stored_request.model = spec.request_id, spec.backend, model
        if spec.sampling.seed is not None:
            stored_request.sampling.seed = spec.sampling.seed
        now = time.time()
        return await self._store.create(
            NewRequest(
                key=key,
                fingerprint=fingerprint,
                request=stored_request.SerializeToString(),
                prompt=prompt,
                strategy=str(strategy_name(spec.strategy)),
                backend=spec.backend,
                model=model,
                created_at=now,
                deadline_at=now + spec.deadline_s,
            ),
            self._owner,
        )

    def _pool_policy(self, tenant: str, strategy: object) -> PoolPolicy | None:
        """The budget pool a self-consistency request names, or None; `InvalidArgument` when it cannot use it."""
        if not isinstance(strategy, SelfConsistencySpec) or not strategy.pool:
            return None
        field = "strategy.self_consistency"
        pools = self._policies.of(tenant).pools
        policy = pools.get(strategy.pool)
        if policy is None:
            configured = ", ".join(sorted(pools)) or "none"
            raise InvalidArgument(
                f"{field}.pool", f"tenant {tenant!r} has no budget pool {strategy.pool!r} (configured: {configured})"
            )
        if strategy.wave_size > policy.burst:
            raise InvalidArgument(
                f"{field}.wave_size",
                f"must not exceed the burst of pool {strategy.pool!r} ({policy.burst}), got {strategy.wave_size}",
            )
        return policy

    async def _close_pool_gate(self, gate: PoolGate, driver: Driver) -> None:
        """Leave the pool's waiting set and book the request's tokens; if the store is down, the waiter goes stale
        by itself (in seconds) and only the pool's token statistics miss this request."""
        usage = driver.snapshot().usage
        try:
            await gate.close(usage.path_tokens + usage.probe_tokens)
        except StoreUnavailable as error:
            log.warning("budget pool not updated at the end of a request: %s", error)

    async def _release_quota(self, tenant: str, request_id: str) -> None:
        """Release an in-flight slot; if the store is down the slot goes stale by itself (after the state TTL)."""
        try:
            await self._quotas.release(tenant, request_id)
        except StoreUnavailable as error:
            log.warning("tenant %s: in-flight slot of %s not released: %s", tenant, request_id, error)

    async def _attach(self, existing: StoredRequest, fingerprint: str) -> StoredRequest:
        if existing.spec.fingerprint != fingerprint:
            raise Conflict(
                f"request id {existing.spec.key.request_id!r} is already used by a request with different "
                "parameters; use a new id or resend the original request"
            )
        await self._adopt_if_orphaned(existing)
        return existing

    async def _question_prompt(self, backend: Backend, model: str, question: str) -> str:
        return question_prompt(question, self._settings.instruction, await self._chat_template(backend, model))

    async def _chat_template(self, backend: Backend, model: str) -> str | None:
        key = (backend.name, model)
        if key not in self._templates:
            published = await backend.chat_template(model) if self._settings.prompt_template == "auto" else None
            self._templates[key] = resolve_template(self._settings.prompt_template, published)
        return self._templates[key]

    # -- running here -------------------------------------------------------------------------------------------

    def _launch(self, stored: StoredRequest, claim: Claim, trace_context: TraceContext | None = None) -> None:
        """Run (or resume, from `claim`'s journal) a request whose lease this replica holds."""
        key = stored.spec.key
        run = LocalRun(key=key, stored=stored)
        run.recorder = Recorder(
            self._store,
            key,
            self._owner,
            writes=claim.writes,
            summarize=lambda: self._summary(run),
            on_written=run.notify,
        )
        self._local[key] = run
        run.task = asyncio.create_task(self._execute(run, claim, trace_context))
        run.heartbeat = asyncio.create_task(self._heartbeat(run))

    async def _execute(self, run: LocalRun, claim: Claim, trace_context: TraceContext | None) -> None:
        stored = run.stored
        try:
            if stored.spec.strategy == StrategyName.BATCH:
                batch = pb.SolveBatchRequest.FromString(stored.spec.request)
                run.spec = spec = validate_batch(batch, self._settings, run.key.request_id)
            else:
                solve = pb.SolveRequest.FromString(stored.spec.request)
                run.spec = spec = validate(solve, self._settings, run.key.request_id)
            label = f"{run.key}:journal"
            replay = [decode_reply(label, index, raw) for index, raw in enumerate(claim.journal)]
            strategy = await self._strategy(spec, stored)
            pool_policy = self._pool_policy(run.key.tenant, spec.strategy)
        except (CertaError, DecodeError) as error:
            failure = error if isinstance(error, CertaError) else CorruptState(f"{run.key}:meta", f"request: {error}")
            log.warning("request %s cannot be resumed: %s", run.key, failure)
            await self._conclude(run, None, failure)
            return
        resumed = stored.attempt > 1
        tenant = run.key.tenant
        gate = None
        if pool_policy is not None and isinstance(spec.strategy, SelfConsistencySpec):
            gate = PoolGate(
                self._pools, tenant, spec.strategy.pool, pool_policy, run.key.request_id, self._telemetry
            )

        async def checkpoint(reply: Reply) -> bool:
            cancel = await run.recorder.checkpoint(reply)
            await self._quotas.spend(tenant, reply.outcome.tokens)
            return cancel

        run.driver = Driver(
            self._backends[spec.backend],
            stored.spec.model,
            token_budget=spec.token_budget,
            on_event=lambda event: run.recorder.event(event_to_proto(run.key.request_id, event).SerializeToString()),
            telemetry=self._telemetry,
            replay=replay,
            checkpoint=checkpoint,
            resumed_attempt=stored.attempt if resumed else 0,
            elapsed_before_s=max(time.time() - stored.spec.created_at, 0.0) if resumed else 0.0,
            log_content=self._policies.of(tenant).log_content,
            pool=gate.ask if gate is not None else None,
        )
        if stored.cancel_requested:
            run.cancel.set()
        with self._telemetry.solve(
            request_id=run.key.request_id,
            strategy=stored.spec.strategy,
            backend=spec.backend,
            model=stored.spec.model,
            token_budget=spec.token_budget,
            parent=trace_context,
        ) as observed:
            try:
                try:
                    report = await run.driver.run(
                        strategy, deadline_s=max(stored.spec.deadline_at - time.time(), 0.001), cancel=run.cancel
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

    async def _strategy(self, spec: SolveSpec, stored: StoredRequest) -> Strategy:
        """The running strategy; refinement prompts and a batch's questions use the model's chat template."""
        chat_template = None
        strategy = spec.strategy
        if isinstance(strategy, BatchSpec) or (
            isinstance(strategy, SelfConsistencySpec) and strategy.refinement is not None
        ):
            chat_template = await self._chat_template(self._backends[spec.backend], stored.spec.model)
        if isinstance(strategy, BatchSpec):
            prompts = [
                (question_prompt(text, self._settings.instruction, chat_template),) for _, text in strategy.questions
            ]
            return build_batch(
                strategy,
                prompts,
                spec.token_budget,
                spec.sampling,
                render=lambda message: (question_prompt(message, "", chat_template),),
            )
        return build_strategy(
            spec.strategy,
            (stored.spec.prompt,),
            spec.token_budget,
            spec.sampling,
            question=None if spec.raw_prompt else spec.text,
            # A refinement message asks for \boxed{} itself: it is rendered without the instruction.
            render=lambda message: (question_prompt(message, "", chat_template),),
        )

    def _summary(self, run: LocalRun) -> bytes:
        return report_to_proto(run.driver.snapshot()).SerializeToString() if run.driver is not None else b""

    async def _conclude(self, run: LocalRun, report: SolveReport | None, error: CertaError | None) -> None:
        """Record the outcome in the store (unless the lease was lost or the replica drains), then locally."""
        status = Status.RUNNING
        if run.heartbeat is not None:  # before the final write, which ends the lease the heartbeat renews
            run.heartbeat.cancel()
        try:
            cause = error.cause if isinstance(error, SolveInterrupted) else error
            if run.lost or isinstance(cause, LeaseLost):
                run.lost = True
                log.info("request %s continues on another replica", run.key)
                return
            if report is not None and report.stop_reason is StopReason.CANCELLED and run.stopped_by_shutdown:
                shutdown = ShuttingDown("the replica shut down before the request finished; retry it")
                error, report = SolveInterrupted(str(shutdown), partial=report, cause=shutdown), None
                run.unrecorded = True
                await run.recorder.release()
                return
            if isinstance(cause, StoreUnavailable):
                run.unrecorded = True
                return
            partial = report if report is not None else getattr(error, "partial", None)
            summary = report_to_proto(partial).SerializeToString() if partial is not None else b""
            final = Status.FAILED
            if report is not None:
                final = Status.CANCELLED if report.stop_reason is StopReason.CANCELLED else Status.SUCCEEDED
            await run.recorder.finish(final, summary, failure_of(error) if error is not None else None)
            status = final
            await self._release_quota(run.key.tenant, run.key.request_id)
        except LeaseLost:
            run.lost = True
        except StoreUnavailable as store_error:  # the outcome itself could not be written
            run.unrecorded = True
            if error is None:
                error = SolveInterrupted(str(store_error), partial=report, cause=store_error)
                report = None
        finally:
            await run.recorder.close()
            if self._local.get(run.key) is run:
                del self._local[run.key]
            run.status, run.report, run.error, run.concluded = status, report, error, True
            run.notify()

    async def _heartbeat(self, run: LocalRun) -> None:
        """Keep the lease while the run goes on; notice a cancellation asked on another replica."""
        while True:
            await asyncio.sleep(self._lease_s / 3)
            try:
                if await run.recorder.renew():
                    run.cancel.set()
            except LeaseLost:
                log.warning("request %s: lease lost; another replica continues it", run.key)
                run.lost = True
                run.cancel.set()
                return
            except StoreUnavailable as error:
                log.warning("request %s: cannot renew its lease: %s", run.key, error)

    # -- any replica ----------------------------------------------------------------------------------------------

    async def _read(self, key: RequestKey) -> StoredRequest:
        stored = await self._store.read(key)
        if stored is None:
            raise NotFound(f"no request with id {key.request_id!r} (unknown, or expired)")
        return stored

    async def _adopt_if_orphaned(self, stored: StoredRequest) -> None:
        """Resume a running request nobody holds the lease of."""
        key = stored.spec.key
        if stored.status is not Status.RUNNING or stored.owner or key in self._local or self._draining:
            return
        claim = await self._store.claim(key, self._owner)
        if claim is None:
            return
        log.info("resuming request %s (attempt %d) from its checkpoint", key, claim.request.attempt)
        self._launch(claim.request, claim)

    async def follow(self, key: RequestKey) -> AsyncIterator[pb.SolveEvent]:
        """Every event of the request from the first, then its result; raises the request's error if it failed."""
        cursor = ""
        while True:
            run = self._local.get(key)
            try:
                entries = await self._store.events(key, cursor)
            except StoreUnavailable:
                if run is not None:
                    await run.wait()
                    if run.error is not None:
                        raise run.error from None
                raise
            for entry in entries:
                cursor = entry.cursor
                if entry.is_end:
                    yield await self._final_event(key)
                    return
                try:
                    yield pb.SolveEvent.FromString(entry.event)
                except DecodeError:
                    raise CorruptState(f"{key}:events", f"entry {entry.cursor} is not a SolveEvent") from None
            if entries:
                continue
            if run is not None:
                if run.unrecorded and run.error is not None:
                    raise run.error
                await run.changed(REMOTE_POLL_S)
            else:
                await asyncio.sleep(REMOTE_POLL_S)
                await self._adopt_if_orphaned(await self._read(key))

    async def _final_event(self, key: RequestKey) -> pb.SolveEvent:
        stored = await self._read(key)
        result = self._stored_result(stored)
        if stored.failure is not None:
            raise restore_error(stored.failure, result)
        return pb.SolveEvent(request_id=key.request_id, result=result)

    @staticmethod
    def _stored_result(stored: StoredRequest) -> pb.SolveResult | None:
        if not stored.summary:
            return None
        try:
            return pb.SolveResult.FromString(stored.summary)
        except DecodeError:
            raise CorruptState(f"{stored.spec.key}:meta", "field 'summary' is not a SolveResult") from None

    async def wait(self, key: RequestKey) -> pb.SolveResponse:
        """The request's final response once it is done; raises its error if it failed."""
        run = self._local.get(key)
        if run is not None:
            await run.wait()
            if not run.lost:
                if run.error is not None:
                    raise run.error
                return await self.describe(key)
        async for _ in self.follow(key):
            pass
        return await self.describe(key)

    async def describe(self, key: RequestKey) -> pb.SolveResponse:
        stored = await self._read(key)
        await self._adopt_if_orphaned(stored)
        run = self._local.get(key)
        result = self._stored_result(stored)
        if stored.status is Status.RUNNING and run is not None and run.driver is not None and not run.done:
            result = report_to_proto(run.driver.snapshot())  # fresher than the last checkpoint's
        created = Timestamp()
        created.FromNanoseconds(int(stored.spec.created_at * 1e9))
        return pb.SolveResponse(
            request_id=key.request_id,
            status=_STATUS[stored.status],
            result=result,
            error=stored.failure.message if stored.failure is not None else "",
            created_at=created,
            strategy=stored.spec.strategy,
            attempt=stored.attempt,
        )

    async def cancel(self, key: RequestKey) -> bool:
        """Ask a running request to stop (its owner notices within one round); False when it had finished."""
        status = await self._store.request_cancel(key)
        if status is None:
            raise NotFound(f"no request with id {key.request_id!r} (unknown, or expired)")
        run = self._local.get(key)
        if run is not None and not run.done:
            run.cancel.set()
        elif status is Status.RUNNING:
            await self._adopt_if_orphaned(await self._read(key))  # an orphan resumes, sees the flag and stops
        return status is Status.RUNNING

    def abandon(self, key: RequestKey) -> None:
        """Stop a request of this replica nobody can collect any more (its client left, and it had no id)."""
        run = self._local.get(key)
        if run is not None and not run.done:
            run.cancel.set()

    # -- sweep and drain ------------------------------------------------------------------------------------------

    async def sweep(self) -> int:
        """Resume the orphaned requests this replica has room for; returns how many it resumed."""
        room = self._settings.max_concurrent_requests - self.in_flight()
        if room <= 0 or self._draining:
            return 0
        resumed = 0
        for key in await self._store.orphans(room):
            if key in self._local:
                continue
            stored = await self._store.read(key)
            if stored is None or stored.status is not Status.RUNNING:
                await self._store.forget_orphan(key)
                continue
            await self._adopt_if_orphaned(stored)
            resumed += key in self._local
        return resumed

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self._settings.store.sweep_interval_s)
            try:
                await self.sweep()
            except CertaError as error:
                log.warning("sweep for orphaned requests failed: %s", error)

    async def drain(self, timeout_s: float) -> None:
        """Refuse new requests, wait for running ones to finish, then hand the rest to other replicas."""
        self._draining = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        tasks = [run.task for run in self._local.values() if run.task is not None and not run.done]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=timeout_s)
            for run in list(self._local.values()):
                if not run.done:
                    run.stopped_by_shutdown = True
                    run.cancel.set()
            if pending:
                await asyncio.wait(pending)

    async def close(self) -> None:
        await self._store.close()
