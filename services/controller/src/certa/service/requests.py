"""The application service: turns validated requests into runs, and makes every request reachable from any replica.

It speaks core values only (a `SolveSpec` in; `RequestView`s, events and reports out); the API layer maps them to
its wire format. A request lives in the state store (`certa.store`): its record, its journal of checkpoints, its
event stream and the lease of the replica running it. A replica runs the requests whose lease it holds (`runs`); any
replica can report on, follow, cancel or resume any request of the same tenant (`reads`):

* `submit` creates the record and starts the run here, once admission and the model catalog (`models`) accept it.
  A request id the client chose that exists already is an idempotent retry: with the same validated parameters it
  attaches to that request (running or finished), otherwise `Conflict`. If that request failed with a retryable
  code (`codec.RETRYABLE_FAILURES`: UNAVAILABLE), the retry runs it again, from the start, as its next attempt.
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
import random
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import replace

from certa.backends.port import Backend
from certa.config import Settings, default_replica_id
from certa.core.errors import Conflict, ShuttingDown
from certa.core.spec import SolveSpec
from certa.core.strategies import BatchSpec, strategy_name
from certa.observability.telemetry import Telemetry, TraceContext
from certa.runtime.fair_queue import FairQueue
from certa.service.admission import Admission
from certa.service.models import ModelCatalog
from certa.service.planning import Planner, parameters_fingerprint
from certa.service.reads import Reads
from certa.service.runs import Runs
from certa.service.sweeper import Sweeper
from certa.service.views import FollowedEvent, RequestView
from certa.store.pools.memory import MemoryBudgetPools
from certa.store.pools.port import BudgetPools
from certa.store.quotas.memory import MemoryQuotaLedger
from certa.store.quotas.port import QuotaLedger
from certa.store.requests import values
from certa.store.requests.codec import is_retryable
from certa.store.requests.port import (
    Claim,
    Created,
    Existing,
    RequestKey,
    RequestRecord,
    StateStore,
    Status,
    StoredRequest,
)
from certa.tenants import TenantPolicies


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
        policies = policies or TenantPolicies()
        self._backends = dict(backends)
        self._store = store
        self._rng = rng or random.Random()
        self._owner = settings.store.replica_id or default_replica_id()
        self._planner = Planner(self._backends, settings.instruction, settings.prompt_template)
        self._admission = Admission(settings.max_concurrent_requests, quotas or MemoryQuotaLedger(), policies)
        self._models = ModelCatalog(self._backends, settings.backend_models, policies)
        call_queues = (
            {name: FairQueue(settings.backend_max_concurrent_calls) for name in self._backends}
            if settings.backend_max_concurrent_calls
            else {}
        )
        self._runs = Runs(
            backends=self._backends,
            store=store,
            owner=self._owner,
            lease_s=settings.store.lease_s,
            planner=self._planner,
            admission=self._admission,
            policies=policies,
            pools=pools or MemoryBudgetPools(),
            telemetry=telemetry or Telemetry.disabled(),
            call_queues=call_queues,
        )
        self._reads = Reads(store, self._runs)
        self._sweeper = Sweeper(
            store,
            self._runs,
            settings.max_concurrent_requests,
            settings.store.sweep_interval_s,
            telemetry or Telemetry.disabled(),
        )

    @property
    def backends(self) -> Mapping[str, Backend]:
        return self._backends

    @property
    def store(self) -> StateStore:
        return self._store

    @property
    def replica_id(self) -> str:
        return self._owner

    async def chat_template(self, backend: str, model: str) -> str | None:
        """The chat template question prompts for `model` of `backend` are rendered with (None: sent as is)."""
        return await self._planner.chat_template(backend, model or self._backends[backend].default_model)

    @property
    def instruction(self) -> str:
        """What a question prompt appends to the question (`CERTA_INSTRUCTION`)."""
        return self._planner.instruction

    def in_flight(self) -> int:
        return self._runs.in_flight()

    def start(self) -> None:
        """Start the sweep that resumes requests whose replica died."""
        self._sweeper.start()

    async def sweep(self) -> int:
        """Resume the orphaned requests this replica has room for now; returns how many it resumed."""
        return await self._sweeper.sweep()

    async def submit(
        self,
        spec: SolveSpec,
        tenant: str,
        *,
        idempotent: bool,
        trace_context: TraceContext | None = None,
        client_deadline_s: float | None = None,
    ) -> RequestView:
        """Start solving `spec`, or (`idempotent`: the client chose the id) attach to the request stored under it.

        The run's span is a child of `trace_context` (the caller's, from its `traceparent`) when given. A client
        whose own deadline is shorter than the request's gets that one, so it still receives partial results.
        """
        if self._runs.draining:
            raise ShuttingDown("this replica is shutting down; retry on another one")
        key = RequestKey(tenant, spec.request_id)
        fingerprint = parameters_fingerprint(replace(spec, request_id=""))
        if idempotent:
            existing = await self._store.read(key)
            if existing is not None:
                return await self._attach(existing, fingerprint, spec)
        self._admission.check(spec, tenant, self._runs.in_flight())
        await self._models.check(spec.backend, spec.model, tenant)
        await self._admission.reserve(tenant, spec.request_id)
        try:
            created = await self._create(spec, key, fingerprint, client_deadline_s)
        except BaseException:
            await asyncio.shield(self._admission.release(tenant, spec.request_id))  # it never started
            raise
        if isinstance(created, Existing):  # a concurrent retry created it first
            if created.request.status is not Status.RUNNING:
                await self._admission.release(tenant, spec.request_id)
            return await self._attach(created.request, fingerprint, spec)
        self._runs.launch(created.request, Claim(created.request, journal=(), writes=0), trace_context)
        return RequestView.of(created.request, None)

    async def _create(
        self, spec: SolveSpec, key: RequestKey, fingerprint: str, client_deadline_s: float | None
    ) -> Created | Existing:
        """Write the request's record: its spec as run (deadline, seed and model resolved) and its prompt."""
        if client_deadline_s is not None:
            spec = replace(spec, deadline_s=max(min(spec.deadline_s, client_deadline_s), 0.001))
        if spec.sampling.seed is None and not spec.sampling.greedy:
            spec = replace(spec, sampling=replace(spec.sampling, seed=self._rng.randrange(2**63)))
        spec = replace(spec, model=spec.model or self._backends[spec.backend].default_model)
        if isinstance(spec.strategy, BatchSpec):
            prompt = ""  # one per question, rendered when the batch runs
        elif spec.raw_prompt:
            prompt = spec.text
        else:
            prompt = await self._planner.question_prompt(spec.backend, spec.model, spec.text)
        now = time.time()
        return await self._store.create(
            RequestRecord(
                key=key,
                fingerprint=fingerprint,
                request=values.encode(spec),
                prompt=prompt,
                strategy=str(strategy_name(spec.strategy)),
                backend=spec.backend,
                model=spec.model,
                created_at=now,
                deadline_at=now + spec.deadline_s,
            ),
            self._owner,
        )

    async def _attach(self, existing: StoredRequest, fingerprint: str, spec: SolveSpec) -> RequestView:
        if existing.record.fingerprint != fingerprint:
            raise Conflict(
                f"request id {existing.record.key.request_id!r} is already used by a request with different "
                "parameters; use a new id or resend the original request"
            )
        if existing.status is Status.FAILED and existing.failure is not None and is_retryable(existing.failure):
            return await self._retry(existing, spec)
        await self._runs.adopt_if_orphaned(existing)
        return RequestView.of(existing, None)

    async def _retry(self, failed: StoredRequest, spec: SolveSpec) -> RequestView:
        """A request that failed with a retryable code (`RETRYABLE_FAILURES`), sent again under its id: it runs again
        from the start as the next attempt (the record counts attempts; same spec and seed, so the same path), with a
        deadline as long as the first one had. It is admitted like a new request."""
        key = failed.record.key
        self._admission.check(spec, key.tenant, self._runs.in_flight())
        await self._admission.reserve(key.tenant, key.request_id)
        record = failed.record
        reopened = await self._store.reopen(key, failed.attempt, time.time() + record.deadline_at - record.created_at)
        current = await self._reads.read(key)
        if not reopened and current.status is not Status.RUNNING:
            await self._admission.release(key.tenant, key.request_id)
        await self._runs.adopt_if_orphaned(current)
        return RequestView.of(current, None)

    def follow(self, key: RequestKey) -> AsyncIterator[FollowedEvent]:
        """Every event of the request from the first, then `Finished`; raises the request's error if it failed."""
        return self._reads.follow(key)

    async def wait(self, key: RequestKey) -> RequestView:
        """The request once it is done; raises its error if it failed."""
        return await self._reads.wait(key)

    async def describe(self, key: RequestKey) -> RequestView:
        return await self._reads.describe(key)

    async def cancel(self, key: RequestKey) -> bool:
        """Ask a running request to stop (its owner notices within one round); False when it had finished."""
        return await self._reads.cancel(key)

    def abandon(self, key: RequestKey) -> None:
        """Stop a request of this replica nobody can collect any more (its client left, and it had no id)."""
        run = self._runs.local.get(key)
        if run is not None and not run.done:
            run.cancel.set()

    async def drain(self, timeout_s: float) -> None:
        """Refuse new requests, wait for running ones to finish, then hand the rest to other replicas."""
        self._runs.draining = True
        self._sweeper.stop()
        await self._runs.drain(timeout_s)

    async def close(self) -> None:
        await self._store.close()
