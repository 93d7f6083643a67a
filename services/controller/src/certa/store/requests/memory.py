"""The in-process adapter of the state store: the same semantics as `RedisStore`, in dictionaries.

For unit tests and for a single controller process (`CERTA_STORE=memory`): nothing survives the process, and
other replicas see nothing, so it is chosen explicitly, never as a fallback. Expiry (leases, TTLs) follows an
injectable clock and is applied when a request is touched.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from certa.core.errors import CorruptState, LeaseLost
from certa.store.requests.codec import read_request, request_fields, summary_fields, writes_of
from certa.store.requests.port import (
    Append,
    Claim,
    Created,
    Existing,
    Finish,
    RequestKey,
    RequestRecord,
    Status,
    StoredRequest,
    StreamEntry,
)


@dataclass
class _Entry:
    fields: dict[bytes, bytes]
    journal: list[bytes] = field(default_factory=list)
    events: list[tuple[int, bytes]] = field(default_factory=list)
    next_event: int = 1
    owner: str = ""
    lease_until: float = 0.0
    expires_at: float = 0.0
    stream_expires_at: float = 0.0


class MemoryStore:
    name = "memory"

    def __init__(
        self,
        *,
        lease_s: float = 10.0,
        state_ttl_s: float = 3600.0,
        result_ttl_s: float = 86400.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._lease_s = lease_s
        self._state_ttl_s = state_ttl_s
        self._result_ttl_s = result_ttl_s
        self._clock = clock
        self._entries: dict[RequestKey, _Entry] = {}

    def _entry(self, key: RequestKey) -> _Entry | None:
        entry = self._entries.get(key)
        now = self._clock()
        if entry is None:
            return None
        if entry.expires_at <= now:
            del self._entries[key]
            return None
        if entry.stream_expires_at <= now:
            entry.journal, entry.events = [], []
        if entry.owner and entry.lease_until <= now:
            entry.owner = ""
        return entry

    def _label(self, key: RequestKey) -> str:
        return f"memory:{key}"

    def _fence(self, key: RequestKey, owner: str) -> _Entry:
        entry = self._entry(key)
        if entry is None or entry.owner != owner:
            raise LeaseLost(f"request {key}: lease of another replica, or expired")
        if entry.fields.get(b"status") != Status.RUNNING.value.encode():
            raise LeaseLost(f"request {key}: request is {entry.fields.get(b'status', b'?').decode()}")
        return entry

    def _touch(self, entry: _Entry) -> None:
        now = self._clock()
        entry.lease_until = now + self._lease_s
        entry.expires_at = entry.stream_expires_at = now + self._state_ttl_s

    def _stored(self, key: RequestKey, entry: _Entry) -> StoredRequest:
        return read_request(self._label(key), key, entry.fields, entry.owner)

    def _add_event(self, entry: _Entry, event: bytes) -> int:
        cursor = entry.next_event
        entry.next_event += 1
        entry.events.append((cursor, event))
        return cursor

    async def ping(self) -> None:
        return None

    async def create(self, request: RequestRecord, owner: str) -> Created | Existing:
        entry = self._entry(request.key)
        if entry is not None:
            return Existing(self._stored(request.key, entry))
        entry = _Entry(fields=request_fields(request), owner=owner)
        self._touch(entry)
        self._entries[request.key] = entry
        return Created(self._stored(request.key, entry))

    async def read(self, key: RequestKey) -> StoredRequest | None:
        entry = self._entry(key)
        return self._stored(key, entry) if entry is not None else None

    async def holder(self, key: RequestKey) -> tuple[Status, str] | None:
        entry = self._entry(key)
        if entry is None:
            return None
        return Status(entry.fields[b"status"].decode()), entry.owner

    async def claim(self, key: RequestKey, owner: str) -> Claim | None:
        entry = self._entry(key)
        if entry is None or entry.owner or entry.fields.get(b"status") != Status.RUNNING.value.encode():
            return None
        entry.owner = owner
        self._touch(entry)
        checkpoint = int(entry.fields.get(b"checkpoint_event", b"0"))
        entry.events = [(cursor, event) for cursor, event in entry.events if cursor <= checkpoint]
        entry.fields[b"attempt"] = str(int(entry.fields.get(b"attempt", b"1")) + 1).encode()
        label = self._label(key)
        return Claim(
            request=self._stored(key, entry), journal=list(entry.journal), writes=writes_of(label, entry.fields)
        )

    async def append(self, key: RequestKey, owner: str, append: Append) -> bool:
        entry = self._entry(key)
        if entry is not None and append.write <= writes_of(self._label(key), entry.fields):
            return entry.fields.get(b"cancel") == b"1"
        entry = self._fence(key, owner)
        expected = writes_of(self._label(key), entry.fields) + 1
        if append.write != expected:
            raise CorruptState(self._label(key), f"expected write {expected}, got {append.write}")
        checkpoint = entry.events[-1][0] if entry.events else 0
        entry.journal.extend(append.journal)
        for index, event in enumerate(append.events, start=1):
            cursor = self._add_event(entry, event)
            if index == append.checkpointed_events:
                checkpoint = cursor
        if append.journal:
            entry.fields[b"checkpoint_event"] = str(checkpoint).encode()
        if append.summary is not None:
            entry.fields.update(summary_fields(append.summary))
        entry.fields[b"writes"] = str(append.write).encode()
        self._touch(entry)
        return entry.fields.get(b"cancel") == b"1"

    async def renew(self, key: RequestKey, owner: str, *, lease_extended: bool = False) -> bool:
        if lease_extended:
            return False  # no index: orphans are found by their leases
        entry = self._fence(key, owner)
        self._touch(entry)
        return entry.fields.get(b"cancel") == b"1"

    async def finish(self, key: RequestKey, owner: str, finish: Finish) -> None:
        entry = self._entry(key)
        if entry is not None and finish.write <= writes_of(self._label(key), entry.fields):
            return
        entry = self._fence(key, owner)
        self._add_event(entry, b"")
        entry.fields.update(
            {
                b"status": finish.status.value.encode(),
                **summary_fields(finish.summary),
                b"writes": str(finish.write).encode(),
                b"journal_entries": str(len(entry.journal)).encode(),
            }
        )
        entry.journal = []
        if finish.failure is not None:
            entry.fields[b"failure_kind"] = finish.failure.kind.encode()
            entry.fields[b"failure_message"] = finish.failure.message.encode()
        entry.owner = ""
        now = self._clock()
        entry.stream_expires_at = now + self._state_ttl_s
        entry.expires_at = now + self._result_ttl_s

    async def reopen(self, key: RequestKey, attempt: int, deadline_at: float) -> bool:
        entry = self._entry(key)
        if entry is None or entry.fields.get(b"status") != Status.FAILED.value.encode():
            return False
        if entry.fields.get(b"attempt") != str(attempt).encode():
            return False
        entry.fields.update(
            {b"status": Status.RUNNING.value.encode(), b"deadline_at": repr(deadline_at).encode(), b"summary": b""}
        )
        for name in (b"failure_kind", b"failure_message", b"cancel", b"checkpoint_event"):
            entry.fields.pop(name, None)
        entry.journal, entry.events = [], []
        entry.owner = ""
        self._touch(entry)
        return True

    async def release(self, key: RequestKey, owner: str) -> None:
        entry = self._entry(key)
        if entry is not None and entry.owner == owner:
            entry.owner = ""

    async def request_cancel(self, key: RequestKey) -> Status | None:
        entry = self._entry(key)
        if entry is None:
            return None
        stored = self._stored(key, entry)
        if stored.status is Status.RUNNING:
            entry.fields[b"cancel"] = b"1"
        return stored.status

    async def events(self, key: RequestKey, after: str) -> list[StreamEntry]:
        entry = self._entry(key)
        if entry is None:
            return []
        start = int(after) if after else 0
        return [StreamEntry(str(cursor), event) for cursor, event in entry.events if cursor > start]

    async def orphans(self, limit: int) -> list[RequestKey]:
        orphaned = []
        for key in list(self._entries):
            entry = self._entry(key)
            if entry is not None and not entry.owner and entry.fields.get(b"status") == Status.RUNNING.value.encode():
                orphaned.append(key)
        return orphaned[:limit]

    async def forget_orphan(self, key: RequestKey) -> None:
        return None

    async def close(self) -> None:
        return None
