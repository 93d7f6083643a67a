"""The state store port: what the controller keeps outside its process, so any replica can serve any request.

Per request (named by tenant and request id) the store holds:

* the **record**: the validated request (with its resolved seed), its rendered prompt, a fingerprint of its
  parameters for idempotency, the absolute deadline, the status, the latest checkpoint's partial result, and in the
  end the final result or the error;
* the **journal**: one entry per backend call the strategy consumed, in order (see `certa.runtime.journal`). The
  strategy is rebuilt on another replica by replaying it, so a checkpoint is exact;
* the **event stream** `SolveStream` replays: encoded runtime events (`values`) and a final end marker;
* the **lease**: which replica runs the request, valid for a few seconds and renewed by a heartbeat.

Every write that changes the journal, the events or the status is fenced by the lease: a replica whose lease has
expired gets `LeaseLost` instead of writing over the replica that took the request over. Journal appends carry a
sequence number, so an append retried after a lost reply is applied once. Adapters: `RedisStore` (the deployed
one) and `MemoryStore` (tests and the explicit single-process mode).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from certa.core.errors import InvalidArgument

DEFAULT_TENANT = "default"
_TENANT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")  # used with fullmatch: `$` would let "x\n" through


def validate_tenant(tenant: str) -> str:
    """The tenant named by a request, or the default one; tenants namespace every key."""
    if not tenant:
        return DEFAULT_TENANT
    if not _TENANT.fullmatch(tenant):
        raise InvalidArgument(
            "x-certa-tenant", "must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return tenant


class Status(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(frozen=True, order=True)
class RequestKey:
    tenant: str
    request_id: str

    def __str__(self) -> str:
        return f"{self.tenant}/{self.request_id}"

    @classmethod
    def parse(cls, text: str) -> RequestKey:
        tenant, _, request_id = text.partition("/")
        return cls(tenant, request_id)


@dataclass(frozen=True)
class RequestRecord:
    """What is written when a request is created."""

    key: RequestKey
    fingerprint: str
    request: bytes  # the validated `SolveSpec` (seed, model and deadline resolved), see `certa.store.requests.values`
    prompt: str
    strategy: str
    backend: str
    model: str
    created_at: float  # Unix seconds
    deadline_at: float  # Unix seconds


@dataclass(frozen=True)
class Failure:
    """A stored error: its kind (see `certa.store.requests.codec`), message, and whether a partial result was kept."""

    kind: str
    message: str


@dataclass(frozen=True)
class StoredRequest:
    """A request as any replica reads it."""

    record: RequestRecord
    status: Status
    owner: str  # the replica holding the lease; empty when none does
    attempt: int  # 1 for the first run, +1 at each resumption
    cancel_requested: bool
    summary: bytes  # latest checkpoint's partial `SolveReport` (`values`); the final one once finished
    schema: str  # the record's schema version, which says how `summary` is encoded (`codec.SCHEMA_VERSION`)
    failure: Failure | None = None


@dataclass(frozen=True)
class Claim:
    """A request this replica now owns, with everything needed to continue it.

    The events written after the last checkpoint by the previous owner have been removed from the stream: the
    text they carried is generated again.
    """

    request: StoredRequest
    journal: Sequence[bytes]
    writes: int  # fenced writes so far; the next `Append.write` is this + 1


@dataclass(frozen=True)
class Created:
    request: StoredRequest


@dataclass(frozen=True)
class Existing:
    request: StoredRequest


@dataclass(frozen=True)
class Append:
    """One fenced write of a running request.

    `write` numbers the writes of a request from 1; a write whose number was already applied (a retry after a lost
    reply) changes nothing. The first `checkpointed_events` events precede the journal entries (they are part of
    the checkpoint); the others were produced after it, by calls still running.
    """

    write: int
    journal: Sequence[bytes] = ()
    events: Sequence[bytes] = ()
    checkpointed_events: int = 0
    summary: bytes | None = None


@dataclass(frozen=True)
class Finish:
    """The fenced final write: status, result (or the partial one) and failure; it also ends the event stream."""

    write: int
    status: Status
    summary: bytes
    failure: Failure | None = None


@dataclass(frozen=True)
class StreamEntry:
    cursor: str
    event: bytes  # an encoded runtime event (`values`); empty for the end marker

    @property
    def is_end(self) -> bool:
        return not self.event


class StateStore(Protocol):
    """The port. Every method raises `StoreUnavailable` when the store cannot be reached, `CorruptState` (naming
    the key) for data it cannot read, and `LeaseLost` from a fenced write by a replica that is no longer the owner."""

    name: str

    async def ping(self) -> None: ...

    async def create(self, request: RequestRecord, owner: str) -> Created | Existing: ...

    async def read(self, key: RequestKey) -> StoredRequest | None: ...

    async def holder(self, key: RequestKey) -> tuple[Status, str] | None:
        """A request's status and the replica holding its lease (`""` when none does), without reading its record:
        what a follower on another replica watches. None when the request is unknown."""

    async def claim(self, key: RequestKey, owner: str) -> Claim | None:
        """Take over a running request whose lease has expired; None when it is owned, finished or unknown."""

    async def append(self, key: RequestKey, owner: str, append: Append) -> bool:
        """Write a checkpoint and events; returns whether a cancellation was requested."""

    async def renew(self, key: RequestKey, owner: str, *, lease_extended: bool = False) -> bool:
        """Extend the lease; returns whether a cancellation was requested. With `lease_extended` (a write since the
        last renewal extended the lease and reported the cancel flag already) only what writes leave alone is
        refreshed, the index a sweep finds orphans by, and it returns False."""

    async def finish(self, key: RequestKey, owner: str, finish: Finish) -> None:
        """Record the outcome, end the event stream, release the lease, and drop the journal (its length stays in
        the record as `journal_entries`); results outlive the events."""

    async def reopen(self, key: RequestKey, attempt: int, deadline_at: float) -> bool:
        """Turn a failed request (still at `attempt`) back into a running one nobody holds, with a new deadline, no
        failure, and an empty journal and event stream (its last journal entry is the failure, which a replay would
        raise again), so `claim` starts it over as the next attempt; False when it is not that failed attempt."""

    async def release(self, key: RequestKey, owner: str) -> None:
        """Give the lease up without finishing (a draining replica), so another replica resumes at once."""

    async def request_cancel(self, key: RequestKey) -> Status | None:
        """Flag a running request for cancellation; returns its status when asked (None: unknown)."""

    async def events(self, key: RequestKey, after: str) -> list[StreamEntry]:
        """Stream entries after the cursor (`""` for the start)."""

    async def orphans(self, limit: int) -> list[RequestKey]:
        """Running requests whose lease may have expired (candidates for `claim`)."""

    async def forget_orphan(self, key: RequestKey) -> None:
        """Drop a request that `claim` found finished or gone from the candidates `orphans` returns."""

    async def close(self) -> None: ...
