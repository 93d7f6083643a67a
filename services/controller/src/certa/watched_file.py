"""Configuration files that take effect when they change, without a restart (Kubernetes updates mounted Secrets
and ConfigMaps in place, cert-manager rotates certificates)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Generic, TypeVar

from certa.core.errors import InvalidArgument

log = logging.getLogger(__name__)

T = TypeVar("T")

RELOAD_CHECK_S = 2.0
"""How often, at most, the files' modification times and sizes are checked."""


class WatchedFiles(Generic[T]):
    """A value loaded from files and loaded again whenever one of them changes.

    `load` reads the files and raises `InvalidArgument` (naming `variable`) when they cannot be used: at start that
    error stops the server; later, the last good value is kept and the error logged.
    """

    def __init__(self, paths: Sequence[str], variable: str, load: Callable[[], T]) -> None:
        self._paths = [Path(path) for path in paths]
        self._variable = variable
        self._load = load
        self._checked_at = time.monotonic()
        self._stamps = self._read_stamps()
        self.value = load()

    def _read_stamps(self) -> list[tuple[float, int]]:
        try:
            return [(stat.st_mtime, stat.st_size) for stat in (path.stat() for path in self._paths)]
        except OSError as error:
            raise InvalidArgument(self._variable, f"cannot read {error.filename!r}: {error.strerror}") from None

    def current(self) -> T:
        now = time.monotonic()
        if now - self._checked_at >= RELOAD_CHECK_S:
            self._checked_at = now
            try:
                stamps = self._read_stamps()
                if stamps != self._stamps:
                    self.value = self._load()
                    self._stamps = stamps
                    log.info("reloaded %s from %s", self._variable, ", ".join(map(str, self._paths)))
            except InvalidArgument as error:
                log.error("keeping the previous %s: %s", self._variable, error)
        return self.value


def watched_json(path: str, variable: str, parse: Callable[[Any], T]) -> WatchedFiles[T]:
    """A JSON file parsed by `parse` (which raises ValueError, KeyError or TypeError on content it refuses)."""

    def load() -> T:
        try:
            return parse(json.loads(Path(path).read_text()))
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise InvalidArgument(variable, f"cannot use {path!r}: {error}") from None

    return WatchedFiles([path], variable, load)
