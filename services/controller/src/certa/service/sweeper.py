"""The background sweep that resumes requests whose replica died (found through the store's in-flight index).

One record the sweep cannot read must not stop it: a record of a newer schema (a rolling upgrade) is left to an
upgraded replica; an unreadable one is dropped from the index (the record itself stays for an operator). Both are
logged with their key and counted (`certa.sweep.skipped`), and the sweep goes on with the next record.
"""

from __future__ import annotations

import asyncio
import logging

from certa.core.errors import CertaError, CorruptState, NewerRecord
from certa.observability.telemetry import Telemetry
from certa.service.runs import Runs
from certa.store.requests.port import RequestKey, StateStore, Status

log = logging.getLogger(__name__)

# Orphans read beyond this replica's room, so records it skips (newer schema) cannot fill every sweep's window.
ORPHAN_LOOKAHEAD = 32


class Sweeper:
    def __init__(
        self,
        store: StateStore,
        runs: Runs,
        max_concurrent_requests: int,
        interval_s: float,
        telemetry: Telemetry | None = None,
    ) -> None:
        self._store = store
        self._runs = runs
        self._max_concurrent = max_concurrent_requests
        self._interval_s = interval_s
        self._telemetry = telemetry or Telemetry.disabled()
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
        for key in await self._store.orphans(room + ORPHAN_LOOKAHEAD):
            if resumed >= room:
                break
            if key in self._runs.local:
                continue
            try:
                resumed += await self._resume(key)
            except NewerRecord as error:
                self._skip(key, "newer_schema", error)
            except CorruptState as error:
                self._skip(key, "unreadable", error)
                await self._store.forget_orphan(key)
        return resumed

    async def _resume(self, key: RequestKey) -> int:
        stored = await self._store.read(key)
        if stored is None or stored.status is not Status.RUNNING:
            await self._store.forget_orphan(key)
            return 0
        await self._runs.adopt_if_orphaned(stored)
        return int(key in self._runs.local)

    def _skip(self, key: RequestKey, reason: str, error: CertaError) -> None:
        log.warning("sweep skipped request %s (%s): %s", key, reason, error)
        self._telemetry.sweep_skipped(reason)

    async def _forever(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                await self.sweep()
            except CertaError as error:
                log.warning("sweep for orphaned requests failed: %s", error)
