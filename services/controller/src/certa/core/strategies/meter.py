"""Token metering of one sample inside a batch: the sample never spends more than its reservation."""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import replace
from typing import Any

from certa.core.commands import Cancel, Command, Handle, Start, Wait, WaitAny
from certa.core.types import Outcome


class TokenMeter:
    """Keeps one sample within `limit` generated tokens and counts what its calls generated and read.

    Every call the sample starts is clamped to what its reservation has left (spent plus the maximum of the calls
    still running), the way the runtime clamps a path to its token budget, so the sample cannot overspend whatever
    the inner strategy asks for.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.generated = 0
        self.prompt_tokens = 0
        self._running: dict[Handle, int] = {}

    def run(self, task: Generator[Command, Any, Any]) -> Generator[Command, Any, Any]:
        reply: Any = None
        while True:
            try:
                command = task.send(reply)
            except StopIteration as finished:
                return finished.value
            if isinstance(command, Start):
                left = max(self.limit - self.generated - sum(self._running.values()), 0)
                if command.request.max_tokens > left:
                    command = Start(replace(command.request, max_tokens=left))
            reply = yield command
            if isinstance(command, Start):
                self._running[reply] = command.request.max_tokens
            elif isinstance(command, Wait | Cancel):
                self.book(command.handle, reply)
            elif isinstance(command, WaitAny):
                self.book(*reply)

    def book(self, handle: Handle, outcome: Outcome) -> None:
        """Count a call's outcome (also for calls the pool cancelled after the task was closed)."""
        self._running.pop(handle, None)
        self.generated += outcome.tokens
        self.prompt_tokens += outcome.prompt_tokens
