"""Configuration files that take effect when they change, without a restart (Kubernetes updates mounted Secrets
and ConfigMaps in place)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from certa.core.errors import InvalidArgument

log = logging.getLogger(__name__)

RELOAD_CHECK_S = 2.0
"""How often, at most, a file's modification time and size are checked."""


class WatchedFile:
    """A JSON file parsed again whenever it changes; a file that becomes unreadable keeps its last good content."""

    def __init__(self, path: str, variable: str, parse: Callable[[Any], Any]) -> None:
        self._path = Path(path)
        self._variable = variable
        self._parse = parse
        self._checked_at = 0.0
        self._stamp: tuple[float, int] | None = None
        self.value = self._load()

    def _load(self) -> Any:
        try:
            stat = self._path.stat()
            parsed = self._parse(json.loads(self._path.read_text()))
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise InvalidArgument(self._variable, f"cannot use {str(self._path)!r}: {error}") from None
        self._stamp = (stat.st_mtime, stat.st_size)
        return parsed

    def current(self) -> Any:
        now = time.monotonic()
        if now - self._checked_at >= RELOAD_CHECK_S:
            self._checked_at = now
            try:
                stat = self._path.stat()
                if (stat.st_mtime, stat.st_size) != self._stamp:
                    self.value = self._load()
                    log.info("reloaded %s from %s", self._variable, self._path)
            except (OSError, InvalidArgument) as error:
                log.error("keeping the previous %s: %s", self._variable, error)
        return self.value
