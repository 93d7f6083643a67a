"""Composition: run several strategies as one, and vote over their answers.

`run_concurrently` is a small pure scheduler. It forwards each inner strategy's Start, Cancel and Emit commands,
and when every unfinished strategy is blocked waiting, yields one `WaitAny` over all awaited handles and routes
the outcome to the strategy that owns it. Inner strategies therefore run side by side without knowing it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Generator, Sequence
from typing import Any

from certa.core.answers import group_answers
from certa.core.commands import Command, Handle, Start, Wait, WaitAny
from certa.core.types import PathResult, StopReason, StrategyResult


def run_concurrently(strategies: Sequence[Generator[Command, Any, Any]]) -> Generator[Command, Any, list[Any]]:
    """Run strategies side by side; return their results in order."""
    results: list[Any] = [None] * len(strategies)
    waiting: dict[int, Wait | WaitAny] = {}
    owner: dict[Handle, int] = {}
    to_send: dict[int, Any] = {index: None for index in range(len(strategies))}
    runnable = deque(range(len(strategies)))
    while runnable or waiting:
        while runnable:
            index = runnable.popleft()
            try:
                command = strategies[index].send(to_send.pop(index))
            except StopIteration as finished:
                results[index] = finished.value
                continue
            if isinstance(command, Wait | WaitAny):
                waiting[index] = command
                continue
            reply = yield command
            if isinstance(command, Start):
                owner[reply] = index
            to_send[index] = reply
            runnable.append(index)
        if waiting:
            awaited = tuple(
                handle
                for command in waiting.values()
                for handle in (command.handles if isinstance(command, WaitAny) else (command.handle,))
            )
            handle, outcome = yield WaitAny(awaited)
            index = owner.pop(handle)
            command = waiting.pop(index)
            to_send[index] = outcome if isinstance(command, Wait) else (handle, outcome)
            runnable.append(index)
    return results


def single_path(path: Generator[Command, Any, PathResult]) -> Generator[Command, Any, StrategyResult]:
    """A one-path strategy as a request-level strategy."""
    result = yield from path
    return StrategyResult(
        result.answer, result.stop_reason, result.text, samples=(result,), stop_detail=result.detail
    )


def majority_vote(paths: Sequence[Generator[Command, Any, PathResult]]) -> Generator[Command, Any, StrategyResult]:
    """Self-consistency: run the paths side by side; the largest answer class wins, ties to the earliest sample.

    The returned text is that of the earliest sample in the winning class. Paths without an answer do not vote.
    """
    results: list[PathResult] = yield from run_concurrently(paths)
    classes = group_answers([result.answer for result in results])
    if not classes:
        return StrategyResult("", StopReason.VOTED, "", samples=tuple(results))
    winner = classes[0]
    return StrategyResult(
        answer=winner.answer,
        stop_reason=StopReason.VOTED,
        text=results[winner.first_sample].text,
        samples=tuple(results),
        answer_classes=classes,
    )
