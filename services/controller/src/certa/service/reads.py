"""The read side: any replica follows, describes, awaits or cancels any request of a tenant.

A request running here is read from its `LocalRun` (fresher than its last checkpoint); one running elsewhere from
the store, and an orphan found on the way (its replica died) is resumed here.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace

from certa.core.errors import NotFound, StoreUnavailable
from certa.core.report import RuntimeEvent
from certa.service.runs import REMOTE_POLL_S, LocalRun, Runs, RunState
from certa.service.views import Finished, FollowedEvent, RequestView
from certa.store.requests import values
from certa.store.requests.codec import restore_error
from certa.store.requests.port import RequestKey, StateStore, Status, StoredRequest


class Reads:
    def __init__(self, store: StateStore, runs: Runs) -> None:
        self._store = store
        self._runs = runs

    async def read(self, key: RequestKey) -> StoredRequest:
        stored = await self._store.read(key)
        if stored is None:
            raise NotFound(f"no request with id {key.request_id!r} (unknown, or expired)")
        return stored

    async def follow(self, key: RequestKey) -> AsyncIterator[FollowedEvent]:
        """Every event of the request from the first, then `Finished`; raises the request's error if it failed.

        While the request runs here, the follower is counted on its run, whose events then reach the store sooner.
        """
        cursor = ""
        run = None
        followed: LocalRun | None = None
        try:
            while True:
                # A run that ended without a stored outcome leaves `local`; its error is still this follower's.
                run = self._runs.local.get(key) or (
                    run if run is not None and run.state is RunState.UNRECORDED else None
                )
                if run is not followed:
                    if followed is not None:
                        followed.followers -= 1
                    if run is not None:
                        run.followers += 1
                    followed = run
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
                        yield await self._finished(key)
                        return
                    yield values.decode(entry.event, RuntimeEvent, f"{key}:events")
                if entries:
                    continue
                if run is not None:
                    if run.state is RunState.UNRECORDED and run.error is not None:
                        raise run.error
                    await run.changed(REMOTE_POLL_S)
                else:
                    await asyncio.sleep(REMOTE_POLL_S)
                    await self._adopt_if_orphaned(key)
        finally:
            if followed is not None:
                followed.followers -= 1

    async def _adopt_if_orphaned(self, key: RequestKey) -> None:
        """Resume the request here if it runs and nobody holds its lease; watches the lease, reads the record only
        when it is free."""
        holder = await self._store.holder(key)
        if holder is None:
            raise NotFound(f"no request with id {key.request_id!r} (unknown, or expired)")
        status, owner = holder
        if status is Status.RUNNING and not owner:
            await self._runs.adopt_if_orphaned(await self.read(key))

    async def _finished(self, key: RequestKey) -> Finished:
        stored = await self.read(key)
        result = values.stored_report(stored)
        if stored.failure is not None:
            raise restore_error(stored.failure, result)
        return Finished(result)

    async def wait(self, key: RequestKey) -> RequestView:
        """The request once it is done; raises its error if it failed."""
        run = self._runs.local.get(key)
        if run is not None:
            await run.wait()
            if run.state is not RunState.HANDED_OVER:
                if run.error is not None:
                    raise run.error
                if run.recorded_status is not None:  # as recorded by this replica: no need to read it back
                    return RequestView.of(replace(run.stored, status=run.recorded_status, owner=""), run.report)
                return await self.describe(key)
        async for _ in self.follow(key):
            pass
        return await self.describe(key)

    async def describe(self, key: RequestKey) -> RequestView:
        stored = await self.read(key)
        await self._runs.adopt_if_orphaned(stored)
        run = self._runs.local.get(key)
        result = values.stored_report(stored)
        if stored.status is Status.RUNNING and run is not None and run.driver is not None and not run.done:
            result = run.driver.snapshot()  # fresher than the last checkpoint's
        return RequestView.of(stored, result)

    async def cancel(self, key: RequestKey) -> bool:
        """Ask a running request to stop (its owner notices within one round); False when it had finished."""
        status = await self._store.request_cancel(key)
        if status is None:
            raise NotFound(f"no request with id {key.request_id!r} (unknown, or expired)")
        run = self._runs.local.get(key)
        if run is not None and not run.done:
            run.cancel.set()
        elif status is Status.RUNNING:
            await self._runs.adopt_if_orphaned(await self.read(key))  # an orphan resumes, sees the flag and stops
        return status is Status.RUNNING

