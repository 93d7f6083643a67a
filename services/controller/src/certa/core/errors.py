"""The one exception tree of Certa. The API maps each class to a gRPC status in one place.

    CertaError
    ├── InvalidArgument        → INVALID_ARGUMENT   (names the field and the accepted range)
    ├── Unauthenticated        → UNAUTHENTICATED    (missing, wrong or expired credentials)
    ├── NotFound               → NOT_FOUND
    ├── Conflict               → ALREADY_EXISTS     (a request id reused with other parameters)
    ├── Overloaded             → RESOURCE_EXHAUSTED (too many requests in flight; retry later)
    │   └── QuotaExceeded      → RESOURCE_EXHAUSTED (a tenant's limit; says how long to wait)
    ├── ShuttingDown           → UNAVAILABLE        (the replica drains; retry on another one)
    ├── BackendError           → UNAVAILABLE / INVALID_ARGUMENT (the server rejected the input)
    │   └── BackendUnavailable → UNAVAILABLE        (cannot reach the server or its model)
    ├── StoreUnavailable       → UNAVAILABLE        (the state store cannot be reached)
    │   └── NewerRecord        → UNAVAILABLE        (a record of a newer schema: an upgraded replica reads it)
    ├── LeaseLost              → UNAVAILABLE        (another replica took the request over)
    ├── CorruptState           → DATA_LOSS          (a stored value cannot be read; names the key)
    └── SolveInterrupted       → the status of its cause; carries the partial result
        └── DeadlineExceeded   → DEADLINE_EXCEEDED

Anything else is a bug: it becomes INTERNAL with a generic message, and the detail goes to the log.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from certa.core.redact import redact_text

if TYPE_CHECKING:
    from certa.core.report import SolveReport


class CertaError(Exception):
    """Base of every error Certa raises on purpose. Its message reaches clients, logs and stored results, so any
    URL in it is redacted here, once for every path (`certa.core.redact`)."""

    def __init__(self, message: str = "") -> None:
        super().__init__(redact_text(message))


class InvalidArgument(CertaError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class Unauthenticated(CertaError):
    pass


class NotFound(CertaError):
    pass


class Conflict(CertaError):
    pass


class Overloaded(CertaError):
    pass


class QuotaExceeded(Overloaded):
    """A tenant's limit is reached; `retry_after_s` says when to try again (None: waiting will not help)."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class ShuttingDown(CertaError):
    pass


class BackendError(CertaError):
    """The backend reported an error. `rejected_input` is True when the server refused the request itself."""

    def __init__(self, backend: str, message: str, *, rejected_input: bool = False) -> None:
        super().__init__(f"backend {backend!r}: {message}")
        self.backend = backend
        self.rejected_input = rejected_input


class BackendUnavailable(BackendError):
    pass


class StoreUnavailable(CertaError):
    pass


class NewerRecord(StoreUnavailable):
    """A stored record of a schema version newer than this replica reads: written by an upgraded replica during a
    rolling upgrade. Not corrupt: this replica leaves it alone, and an upgraded one serves it."""

    def __init__(self, key: str, version: str) -> None:
        super().__init__(f"state store key {key!r}: schema version {version!r} is newer than this replica reads")
        self.key = key


class LeaseLost(CertaError):
    """This replica no longer owns the request: its lease expired and another replica may have resumed it."""


class CorruptState(CertaError):
    """A value in the state store is not what Certa wrote there (foreign data, or another schema version)."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"state store key {key!r}: {problem}")
        self.key = key


class SolveInterrupted(CertaError):
    """A solve stopped on an error; `partial` is the result reached so far."""

    def __init__(self, message: str, partial: SolveReport | None, cause: CertaError | None = None) -> None:
        super().__init__(message)
        self.partial = partial
        self.cause = cause


class DeadlineExceeded(SolveInterrupted):
    pass
