"""Weighted fair sharing of one backend's call slots between tenants.

A backend serves `slots` calls at once (`CERTA_BACKEND_MAX_CONCURRENT_CALLS`); past that, calls wait here, and a
freed slot goes to the waiting call with the smallest virtual finish tag (start-time fair queuing): a tenant's next
call is tagged `max(virtual time, its previous tag) + 1 / weight`, and virtual time advances to the tag of each call
let through. A tenant flooding the backend queues behind its own calls, while a tenant with one call waits for about
one slot to free, not for the flood: over a busy period each tenant gets slots in proportion to its `weight`
(tenants file). Without contention a call takes a free slot at once and nothing is tagged.

`FairBackend` is a `Backend` whose calls take a slot as one tenant; the service wraps a request's backend in it.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import AsyncIterator
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass, field

from certa.backends.forwarding import ForwardingBackend
from certa.backends.port import Backend, Delta
from certa.core.types import GenerationRequest


@dataclass(order=True)
class _Waiter:
    tag: float
    sequence: int
    future: asyncio.Future[None] = field(compare=False)


class FairQueue:
    def __init__(self, slots: int) -> None:
        if slots < 1:
            raise ValueError(f"a fair queue needs at least one slot, got {slots}")
        self._free = slots
        self._waiting: list[_Waiter] = []
        self._last_tag: dict[str, float] = {}
        self._virtual_time = 0.0
        self._sequence = itertools.count()

    @property
    def waiting(self) -> int:
        return sum(1 for waiter in self._waiting if not waiter.future.done())

    @asynccontextmanager
    async def slot(self, tenant: str, weight: int = 1) -> AsyncIterator[None]:
        """Hold one of the backend's call slots for the block, waiting for it fairly among tenants."""
        if self._free > 0 and not self._waiting:
            self._free -= 1
        else:
            await self._wait(tenant, weight)
        try:
            yield
        finally:
            self._release()

    async def _wait(self, tenant: str, weight: int) -> None:
        tag = max(self._virtual_time, self._last_tag.get(tenant, 0.0)) + 1.0 / max(weight, 1)
        self._last_tag[tenant] = tag
        future = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, _Waiter(tag, next(self._sequence), future))
        self._dispatch()
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():  # granted just as it was cancelled: give the slot back
                self._release()
            raise

    def _release(self) -> None:
        self._free += 1
        self._dispatch()

    def _dispatch(self) -> None:
        while self._free > 0 and self._waiting:
            waiter = heapq.heappop(self._waiting)
            if waiter.future.done():  # its caller was cancelled while waiting
                continue
            self._free -= 1
            self._virtual_time = waiter.tag
            waiter.future.set_result(None)
        if not self._waiting:
            # Idle: tags older than now mean nothing any more; keep the table from growing with every tenant.
            self._last_tag = {t: tag for t, tag in self._last_tag.items() if tag > self._virtual_time}


class FairBackend(ForwardingBackend):
    """`backend` whose calls take a slot of `queue` as `tenant` with `weight`."""

    def __init__(self, backend: Backend, queue: FairQueue, tenant: str, weight: int) -> None:
        super().__init__(backend)
        self._queue = queue
        self._tenant = tenant
        self._weight = weight

    async def stream(self, request: GenerationRequest, model: str) -> AsyncIterator[Delta]:
        async with (
            self._queue.slot(self._tenant, self._weight),
            aclosing(super().stream(request, model)) as deltas,  # type: ignore[type-var]
        ):
            async for delta in deltas:
                yield delta
