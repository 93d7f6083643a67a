"""Redact credentials from URLs before they reach a message, a log line or a span.

A backend or Redis URL may carry a credential: userinfo (`openai+http://user:SECRET@host/v1`,
`redis://:SECRET@host:6379`) or a query parameter (`?api_key=SECRET`). `redact_text` finds every URL in a text and
replaces the userinfo and the values of credential-like query parameters with `***`; everything else (scheme, host,
port, path, adapter options) stays, so the message still says where the fault is. Pure string work: the core has no
URL library (see the pure-core test), and a regex also catches URLs inside an error a library wrote.
"""

from __future__ import annotations

import re

MASK = "***"
# Query parameter names whose value is a credential: matched as substrings, case-insensitively.
SECRET_PARAMETER_PARTS = ("token", "key", "secret", "pass", "pwd", "auth", "sig", "cred", "session")
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>`]+")
_PARAMETER = re.compile(r"([?&;])([^=&;#]*)=([^&;#]*)")


def _secret_name(name: str) -> bool:
    lowered = name.lower()
    return any(part in lowered for part in SECRET_PARAMETER_PARTS)


def redact_url(url: str) -> str:
    """`url` without its userinfo and without the values of credential-like query parameters."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    end = min((index for index in (rest.find("?"), rest.find("#")) if index >= 0), default=len(rest))
    # The last '@' before the query: a password may hold a '/' that was not percent-encoded.
    at = rest.rfind("@", 0, end)
    if at >= 0:
        rest = MASK + rest[at:]
    redacted = _PARAMETER.sub(
        lambda match: f"{match[1]}{match[2]}={MASK}" if _secret_name(match[2]) else match[0], rest
    )
    return f"{scheme}://{redacted}"


def redact_text(text: str) -> str:
    """`text` with every URL in it redacted (see `redact_url`)."""
    if "://" not in text:
        return text
    return _URL.sub(lambda match: redact_url(match[0]), text)
