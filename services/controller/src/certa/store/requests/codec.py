"""How records are laid out in the store: one flat field map per request, versioned, read back strictly.

Both adapters use these functions, so a record means the same in Redis and in memory. Anything unreadable raises
`CorruptState` naming the key, never a crash further down.
"""

from __future__ import annotations

from collections.abc import Mapping

from certa.core.errors import (
    BackendError,
    BackendUnavailable,
    CertaError,
    Conflict,
    CorruptState,
    DeadlineExceeded,
    InvalidArgument,
    LeaseLost,
    NewerRecord,
    NotFound,
    Overloaded,
    ShuttingDown,
    SolveInterrupted,
    StoreUnavailable,
)
from certa.core.report import SolveReport
from certa.store.requests.port import Failure, RequestKey, RequestRecord, Status, StoredRequest

SCHEMA_VERSION = "3"
"""The version this release writes. 2: the spec, events and results are core values encoded by
`certa.store.requests.values`. 3: the result (`summary`) is a report holding the strategy's result or what an
interrupted run generated, where 2 copied the result's fields into it. Version 1 (protobuf) records are from before
version 2 and are refused."""
READABLE_VERSIONS = frozenset({"2", SCHEMA_VERSION})
"""The versions this release reads. The rule for a rolling upgrade: a release that writes version N+1 also reads N
(READABLE_VERSIONS = {N, N+1}), so a new replica resumes the old replicas' requests; an old replica meeting an N+1
record raises `NewerRecord` (UNAVAILABLE, retry elsewhere), and its sweep leaves the record to a new replica. A
record's version says how its summary is encoded, so a replica writing a summary writes its own version with it: an
N record that an N+1 replica resumed becomes an N+1 record with its first checkpoint."""


def request_fields(request: RequestRecord) -> dict[bytes, bytes]:
    """The fields written at creation: status `running`, first attempt, no write yet."""
    fields = {
        "v": SCHEMA_VERSION.encode(),
        "fingerprint": request.fingerprint.encode(),
        "request": request.request,
        "prompt": request.prompt.encode(),
        "strategy": request.strategy.encode(),
        "backend": request.backend.encode(),
        "model": request.model.encode(),
        "created_at": repr(request.created_at).encode(),
        "deadline_at": repr(request.deadline_at).encode(),
        "status": Status.RUNNING.value.encode(),
        "attempt": b"1",
        "writes": b"0",
        "summary": b"",
    }
    return {name.encode(): value for name, value in fields.items()}


def summary_fields(summary: bytes) -> dict[bytes, bytes]:
    """The fields a summary is written as: itself and the schema version it is encoded in (see READABLE_VERSIONS)."""
    return {b"summary": summary, b"v": SCHEMA_VERSION.encode()}


def read_request(label: str, key: RequestKey, fields: Mapping[bytes, bytes], owner: str) -> StoredRequest:
    """A stored request from its field map; `label` is the store key named in errors."""

    def text(name: str) -> str:
        try:
            return fields[name.encode()].decode()
        except KeyError:
            raise CorruptState(
                label, f"field {name!r} is missing; not a Certa record of schema {SCHEMA_VERSION}"
            ) from None
        except UnicodeDecodeError:
            raise CorruptState(label, f"field {name!r} is not UTF-8 text") from None

    def number(name: str, kind: type) -> float:
        raw = text(name)
        try:
            return kind(raw)
        except ValueError:
            raise CorruptState(label, f"field {name!r} is not a number: {raw[:40]!r}") from None

    schema = check_version(label, fields.get(b"v"))
    try:
        status = Status(text("status"))
    except ValueError:
        raise CorruptState(label, f"unknown status {text('status')!r}") from None
    failure = None
    if b"failure_kind" in fields:
        failure = Failure(text("failure_kind"), text("failure_message"))
    return StoredRequest(
        record=RequestRecord(
            key=key,
            fingerprint=text("fingerprint"),
            request=fields.get(b"request", b""),
            prompt=text("prompt"),
            strategy=text("strategy"),
            backend=text("backend"),
            model=text("model"),
            created_at=number("created_at", float),
            deadline_at=number("deadline_at", float),
        ),
        status=status,
        owner=owner,
        attempt=int(number("attempt", int)),
        cancel_requested=fields.get(b"cancel") == b"1",
        summary=fields.get(b"summary", b""),
        schema=schema,
        failure=failure,
    )


def check_version(label: str, raw: bytes | None) -> str:
    """The schema version `raw` when this release reads it; `NewerRecord` for the next one, `CorruptState`
    otherwise."""
    version = (raw or b"").decode(errors="replace")[:16]
    if version in READABLE_VERSIONS:
        return version
    if version.isdigit() and int(version) == max(int(known) for known in READABLE_VERSIONS) + 1:
        raise NewerRecord(label, version)  # one step ahead: a rolling upgrade; further is not Certa's data
    raise CorruptState(
        label,
        f"schema version {version!r} is not readable (this release reads {sorted(READABLE_VERSIONS)}; version 1 "
        "records are from before the JSON schema and cannot be resumed: retry the request under a new id)",
    )


def writes_of(label: str, fields: Mapping[bytes, bytes]) -> int:
    try:
        return int(fields.get(b"writes", b"0"))
    except ValueError:
        raise CorruptState(label, "field 'writes' is not a number") from None


_ERROR_KINDS: dict[str, type[CertaError]] = {
    cls.__name__: cls
    for cls in (
        CertaError,
        InvalidArgument,
        NotFound,
        Conflict,
        Overloaded,
        ShuttingDown,
        BackendError,
        BackendUnavailable,
        StoreUnavailable,
        LeaseLost,
        CorruptState,
        DeadlineExceeded,
    )
}
_REJECTED = "BackendRejectedInput"
RETRYABLE_FAILURES = frozenset(
    cls.__name__ for cls in (BackendError, BackendUnavailable, StoreUnavailable, LeaseLost, ShuttingDown)
)
"""Stored failures a client may retry under the same id: the ones answered UNAVAILABLE (a backend or store fault,
a replica that stopped). The request runs again from the start as its next attempt. Every other failure is final: its id
answers the same failure until the result expires (INVALID_ARGUMENT, a rejected input, DEADLINE_EXCEEDED, DATA_LOSS,
INTERNAL)."""


def is_retryable(failure: Failure) -> bool:
    return failure.kind in RETRYABLE_FAILURES


def failure_of(error: CertaError) -> Failure:
    """How an error is stored: the kind of its cause (which decides its status code) and its message."""
    cause = error.cause if isinstance(error, SolveInterrupted) and not isinstance(error, DeadlineExceeded) else error
    cause = cause or error
    kind = type(cause).__name__ if type(cause).__name__ in _ERROR_KINDS else CertaError.__name__
    if isinstance(cause, BackendError) and cause.rejected_input:
        kind = _REJECTED
    return Failure(kind, str(error))


def restore_error(failure: Failure, partial: SolveReport | None) -> CertaError:
    """The error a stored failure stands for, carrying `partial` (a `SolveReport`) when there is one."""
    cls = BackendError if failure.kind == _REJECTED else _ERROR_KINDS.get(failure.kind, CertaError)
    if cls is DeadlineExceeded:
        return DeadlineExceeded(failure.message, partial=partial)
    cause = cls.__new__(cls)
    Exception.__init__(cause, failure.message)
    if isinstance(cause, BackendError):
        cause.backend, cause.rejected_input = "", failure.kind == _REJECTED
    if isinstance(cause, InvalidArgument):
        cause.field = ""
    if isinstance(cause, CorruptState):
        cause.key = ""
    if partial is None:
        return cause
    return SolveInterrupted(failure.message, partial=partial, cause=cause)
