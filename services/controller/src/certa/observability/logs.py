"""Logs: one JSON object per line, and the request a line belongs to.

Every line carries `timestamp` (RFC 3339, UTC), `level`, `logger` and `message`; inside a traced operation the
current span's `trace_id` and `span_id` (hex, as tracing backends show them); inside a request its `request_id` and
`tenant`. The servicer and the service set those two with `bind_request` (context variables, so every line logged
by the request's task, and by the tasks it starts, carries them). Extra fields passed as `extra={"fields": {...}}`
are added at the top level: the access and audit lines use that (`certa.access`, `certa.audit`).
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from opentelemetry import trace

from certa.observability.redacting_log import RedactingFilter

ACCESS_LOGGER = "certa.access"
AUDIT_LOGGER = "certa.audit"
LOG_FORMATS = ("json", "text")

_request_id: ContextVar[str] = ContextVar("certa_request_id", default="")
_tenant: ContextVar[str] = ContextVar("certa_tenant", default="")


def bind_request(*, request_id: str | None = None, tenant: str | None = None) -> None:
    """Name the request (and its tenant) that the current task's log lines belong to."""
    if request_id is not None:
        _request_id.set(request_id)
    if tenant is not None:
        _tenant.set(tenant)


def bound_request() -> tuple[str, str]:
    """The (request id, tenant) the current task's lines carry ("" when unknown)."""
    return _request_id.get(), _tenant.get()


def rfc3339_utc(unix_s: float) -> str:
    return datetime.fromtimestamp(unix_s, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    """A log record as one JSON object (see the module docstring for its fields)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "timestamp": rfc3339_utc(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            entry["trace_id"] = format(span.trace_id, "032x")
            entry["span_id"] = format(span.span_id, "016x")
        request_id, tenant = bound_request()
        if request_id:
            entry["request_id"] = request_id
        if tenant:
            entry["tenant"] = tenant
        fields = getattr(record, "fields", None)
        if isinstance(fields, Mapping):
            entry.update(fields)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:  # already formatted (and redacted) by `RedactingFilter`
            entry["exception"] = record.exc_text
        return json.dumps(entry, default=str)


def setup_logging(level: str, fmt: str) -> None:
    """Root logging to stderr, as JSON (`json`) or human-readable text (`text`)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter())  # no URL credential in any line (certa.core.redact)
    handler.setFormatter(
        JsonFormatter() if fmt == "json" else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    logging.basicConfig(level=level, handlers=[handler], force=True)
    # math-verify warns on every call that its SIGALRM timeouts are off; that is deliberate (see core.answers).
    logging.getLogger("math_verify").setLevel(logging.ERROR)
