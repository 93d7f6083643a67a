"""A logging filter that redacts URLs (`certa.core.redact`) in every record, including exception text.

`CertaError` messages are redacted when they are made; this catches the rest: a library's exception or a log call
that formats a URL itself. Installed on the server's log handler by `certa.observability.logs.setup_logging`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from certa.core.redact import redact_text


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact_text(record.getMessage())
        record.args = None
        fields = getattr(record, "fields", None)  # the structured fields of access and audit lines
        if isinstance(fields, Mapping):
            record.fields = {
                key: redact_text(value) if isinstance(value, str) else value for key, value in fields.items()
            }
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text)
            # The formatters below print `exc_text` when it is set; keep them from formatting the raw one again.
            record.exc_info = None
        return True
