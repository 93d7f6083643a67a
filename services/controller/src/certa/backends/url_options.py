"""Adapter options carried in a backend URL's query string (`triton://host:8001?mode=tokens&end_id=2`)."""

from __future__ import annotations

from typing import NoReturn
from urllib.parse import parse_qsl, urlsplit

from certa.config import BackendSpec
from certa.core.errors import InvalidArgument

SETTING = "CERTA_BACKENDS"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class UrlOptions:
    """Reads typed options from a backend URL; `finish()` rejects options nobody asked for.

    Every error is an `InvalidArgument` on `CERTA_BACKENDS` naming the backend, so a typo in the deployment
    configuration is reported at start-up instead of being silently ignored.
    """

    def __init__(self, spec: BackendSpec) -> None:
        self._backend = spec.name
        pairs = parse_qsl(urlsplit(spec.url).query, keep_blank_values=True)
        self._values: dict[str, str] = {}
        for key, value in pairs:
            if key in self._values:
                self.fail(f"option {key!r} is given twice")
            self._values[key] = value
        self._known: list[str] = []

    def fail(self, message: str) -> NoReturn:
        raise InvalidArgument(SETTING, f"backend {self._backend!r}: {message}")

    def _raw(self, key: str) -> str | None:
        self._known.append(key)
        return self._values.get(key)

    def text(self, key: str, default: str) -> str:
        value = self._raw(key)
        if value is None:
            return default
        if not value:
            self.fail(f"option {key!r} must not be empty")
        return value

    def optional_text(self, key: str) -> str | None:
        value = self._raw(key)
        return value or None

    def choice(self, key: str, choices: tuple[str, ...], default: str) -> str:
        value = self.text(key, default)
        if value not in choices:
            self.fail(f"option {key}={value!r} must be one of {', '.join(choices)}")
        return value

    def optional_int(self, key: str) -> int | None:
        value = self._raw(key)
        if value is None:
            return None
        try:
            return int(value)
        except ValueError:
            self.fail(f"option {key}={value!r} must be an integer")

    def boolean(self, key: str, default: bool) -> bool:
        value = self._raw(key)
        if value is None:
            return default
        if value.lower() in _TRUE:
            return True
        if value.lower() in _FALSE:
            return False
        self.fail(f"option {key}={value!r} must be true or false")

    def finish(self) -> None:
        """Reject options that no reader asked for."""
        unknown = sorted(set(self._values) - set(self._known))
        if unknown:
            self.fail(f"unknown option(s) {', '.join(unknown)}; accepted: {', '.join(sorted(set(self._known)))}")
