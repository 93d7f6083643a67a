"""The background sweep that resumes requests whose replica died (found through the store's in-flight index)."""

from __future__ import annotations

import asyncio
import logging

from certa.core.errors import CertaError
from certa.service.runs import Runs
from certa.store.requests.port import StateStore, Status

log = logging.getLogger(__name__)


class Sweeper:
    def __init__(self, store: StateStore, runs: Runs, max_concurrent_requests: int, interval_s: float) -> None:
        self._store = store
        self._runs = runs
        self._max_concurrent = max_concurrent_requests
        self._interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._forever())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def sweep(self) -> int:
        """Resume the orphaned requests this replica has room for; returns how many it resumed."""
        room = self._max_concurrent - self._runs.in_flight()
        if room <= 0 or self._runs.draining:
            return 0
        resumed = 0
        for key in await self._store.orphans(room):
            if key in self._runs.local:
                continue
            stored = await self._store.read(key)
            if stored is None or stored.status is not Status.RUNNING:
                await self._store.forget_orphan(key)
                continue
            await self._runs.adopt_if_orphaned(stored)
            resumed += key in self._runs.local
        return resumed

    async def _forever(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                await self.sweep()
            except CertaError as error:
                log.warning("sweep for orphaned requests failed: %s", error)
