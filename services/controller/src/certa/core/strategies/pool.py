"""A pool of strategies run side by side, to which strategies can be added while others run.

`compose.run_concurrently` runs a fixed list to its end. A batch needs more: start a sample whenever a slot frees
up, learn which sample finished first, and stop the samples of a query that has become certain. `TaskPool` does
that with the same scheduling: it forwards each task's Start, Cancel and Emit, and when every runnable task is
blocked, yields one `WaitAny` over all awaited handles and routes the outcome to the task that owns it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Generator, Hashable
from typing import Any

from certa.core.commands import Cancel, Command, Handle, Start, Wait, WaitAny
from certa.core.types import Outcome


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
        """Run the tasks until one returns; its key and its result."""
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
            handle, outcome = yield WaitAny(awaited)
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
