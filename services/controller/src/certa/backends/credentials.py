"""Credentials Certa presents to a model server, read from files named in the backend URL (never the URL itself).

* `api_key_file=PATH` - a file holding a bearer token, sent as `authorization: Bearer TOKEN` (a vLLM started with
  `--api-key`, a hosted OpenAI-compatible endpoint, a gateway in front of Triton).
* `headers_file=PATH` - a JSON object of extra headers (HTTP) or call metadata (gRPC, names lower-cased), e.g.
  `{"x-tenant": "certa", "api-key": "..."}`.

Both files are typically mounted Secrets and are re-read when they change (`certa.watched_file`), so a rotated
token is used without a restart. Their contents never appear in a URL, an error message or a log line.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from certa.backends.call_metadata import MetadataProvider
from certa.backends.url_options import SETTING, UrlOptions
from certa.core.errors import InvalidArgument
from certa.watched_file import WatchedFiles


def _read_token(path: str, variable: str) -> str:
    try:
        token = Path(path).read_text().strip()
    except OSError as error:
        raise InvalidArgument(variable, f"cannot read api_key_file {path!r}: {error.strerror}") from None
    if not token or any(c.isspace() for c in token):
        raise InvalidArgument(variable, f"api_key_file {path!r} must hold one token (no spaces or line breaks)")
    return token


def _read_headers(path: str, variable: str) -> tuple[tuple[str, str], ...]:
    try:
        document = json.loads(Path(path).read_text())
    except OSError as error:
        raise InvalidArgument(variable, f"cannot read headers_file {path!r}: {error.strerror}") from None
    except ValueError:
        raise InvalidArgument(variable, f"headers_file {path!r} is not JSON") from None
    if not isinstance(document, dict) or not all(
        isinstance(k, str) and k.strip() and isinstance(v, str) for k, v in document.items()
    ):
        raise InvalidArgument(variable, f"headers_file {path!r} must be a JSON object of header names to strings")
    headers = tuple((name.strip().lower(), value) for name, value in document.items())
    if any(name == "authorization" for name, _ in headers):
        raise InvalidArgument(variable, f"headers_file {path!r} must not set authorization: use api_key_file")
    return headers


@dataclass(frozen=True)
class UpstreamCredentials:
    """The files a backend's credentials come from; `pairs()` reads them (re-read when they change)."""

    api_key_file: str | None = None
    headers_file: str | None = None
    _token: WatchedFiles[str] | None = field(default=None, compare=False, repr=False)
    _headers: WatchedFiles[tuple[tuple[str, str], ...]] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def from_options(cls, options: UrlOptions, backend: str) -> UpstreamCredentials:
        """Reads `api_key_file` and `headers_file`; a file that cannot be used stops the start with its reason."""
        api_key_file = options.optional_text("api_key_file")
        headers_file = options.optional_text("headers_file")
        variable = f"{SETTING} (backend {backend!r})"
        token = (
            WatchedFiles([api_key_file], variable, lambda: _read_token(api_key_file, variable))
            if api_key_file
            else None
        )
        headers = (
            WatchedFiles([headers_file], variable, lambda: _read_headers(headers_file, variable))
            if headers_file
            else None
        )
        return cls(api_key_file, headers_file, token, headers)

    def pairs(self) -> list[tuple[str, str]]:
        """The headers (metadata) to send with one call."""
        found: list[tuple[str, str]] = []
        if self._token is not None:
            found.append(("authorization", f"Bearer {self._token.current()}"))
        if self._headers is not None:
            found.extend(self._headers.current())
        return found

    def with_call_metadata(self, provider: MetadataProvider | None) -> MetadataProvider | None:
        """`provider`'s pairs (e.g. trace context) followed by the credentials; None when there is neither."""
        if self._token is None and self._headers is None:
            return provider

        def combined() -> Sequence[tuple[str, str]]:
            return [*(provider() if provider else ()), *self.pairs()]

        return combined
