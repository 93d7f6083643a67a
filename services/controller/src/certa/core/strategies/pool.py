"""A pool of strategies run side by side, to which strategies can be added while others run.

`compose.run_concurrently` runs a fixed list to its end. A batch needs more: start a sample whenever a slot frees
up, learn which sample finished first, and stop the samples of a query that has become certain. `TaskPool` does
that with the same scheduling: it forwards each task's Start, Cancel and Emit, and when every runnable task is
blocked, yields one `WaitAny` over all awaited handles and routes the outcome to the task that owns it. When a call
fails (`CallFailed`), only the task that owns it ends: its other calls are cancelled and it finishes with a
`TaskFailure` instead of a result, so the other tasks go on.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Generator, Hashable
from dataclasses import dataclass
from typing import Any

from certa.core.commands import CallFailed, Cancel, Command, Handle, Start, Wait, WaitAny
from certa.core.errors import CertaError
from certa.core.types import Outcome


@dataclass(frozen=True)
class TaskFailure:
    """What a task ended with when one of its calls failed: the error, and the outcomes of its calls (the failed
    one's partial outcome and those of the calls cancelled with it), whose tokens were spent."""

    error: CertaError
    outcomes: tuple[tuple[Handle, Outcome], ...]


class TaskPool:
    """Tasks (strategies) keyed by the caller; `next_finished` runs them until one returns."""

    def __init__(self) -> None:
        self._tasks: dict[Hashable, Generator[Command, Any, Any]] = {}
        self._waiting: dict[Hashable, Wait | WaitAny] = {}
        self._replies: dict[Hashable, Any] = {}
        self._runnable: deque[Hashable] = deque()
        self._owner: dict[Handle, Hashable] = {}  # calls started by a task and not yet consumed

    def __len__(self) -> int:
        return len(self._tasks)

    def add(self, key: Hashable, task: Generator[Command, Any, Any]) -> None:
        if key in self._tasks:
            raise ValueError(f"a task with key {key!r} is already running")
        self._tasks[key] = task
        self._replies[key] = None
        self._runnable.append(key)

    def next_finished(self) -> Generator[Command, Any, tuple[Hashable, Any]]:
        """Run the tasks until one returns or fails; its key and its result, or its `TaskFailure`."""
        if not self._tasks:
            raise ValueError("the pool has no task")
        while True:
            while self._runnable:
                key = self._runnable.popleft()
                try:
                    command = self._tasks[key].send(self._replies.pop(key))
                except StopIteration as finished:
                    del self._tasks[key]
                    return key, finished.value
                if isinstance(command, Wait | WaitAny):
                    self._waiting[key] = command
                    continue
                reply = yield command
                if isinstance(command, Start):
                    self._owner[reply] = key
                elif isinstance(command, Cancel):
                    self._owner.pop(command.handle, None)
                self._replies[key] = reply
                self._runnable.append(key)
            awaited = tuple(
                handle
                for command in self._waiting.values()
                for handle in (command.handles if isinstance(command, WaitAny) else (command.handle,))
            )
            try:
                handle, outcome = yield WaitAny(awaited)
            except CallFailed as failure:
                key = self._owner.pop(failure.handle)
                cancelled = yield from self.cancel(key)
                return key, TaskFailure(failure.error, ((failure.handle, failure.partial), *cancelled))
            key = self._owner.pop(handle)
            command = self._waiting.pop(key)
            self._replies[key] = outcome if isinstance(command, Wait) else (handle, outcome)
            self._runnable.append(key)

    def cancel(self, key: Hashable) -> Generator[Command, Any, list[tuple[Handle, Outcome]]]:
        """Stop a task: close it and cancel every call it started and did not consume; their partial outcomes."""
        self._tasks.pop(key).close()
        self._waiting.pop(key, None)
        self._replies.pop(key, None)
        if key in self._runnable:
            self._runnable.remove(key)
        handles = [handle for handle, owner in self._owner.items() if owner == key]
        cancelled = []
        for handle in handles:
            del self._owner[handle]
            cancelled.append((handle, (yield Cancel(handle))))
        return cancelled
