"""What the service answers with: core values only (the API maps them to its wire format)."""

from __future__ import annotations

from dataclasses import dataclass

from certa.core.report import RuntimeEvent, SolveReport
from certa.store.requests.port import RequestKey, Status, StoredRequest


@dataclass(frozen=True)
class RequestView:
    """A request as a client may see it: where it stands, and its result (partial while it runs)."""

    key: RequestKey
    status: Status
    strategy: str
    backend: str
    model: str
    created_at: float  # Unix seconds
    attempt: int
    result: SolveReport | None
    error: str = ""  # the failure's message, for a failed request

    @classmethod
    def of(cls, stored: StoredRequest, result: SolveReport | None) -> RequestView:
        record = stored.record
        return cls(
            key=record.key,
            status=stored.status,
            strategy=record.strategy,
            backend=record.backend,
            model=record.model,
            created_at=record.created_at,
            attempt=stored.attempt,
            result=result,
            error=stored.failure.message if stored.failure is not None else "",
        )


@dataclass(frozen=True)
class Finished:
    """The last event of a request that succeeded or was cancelled: its result."""

    result: SolveReport | None


FollowedEvent = RuntimeEvent | Finished
"""What following a request yields: its stored events in order, then `Finished` (or the request's error)."""
