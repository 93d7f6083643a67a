"""The open arms of the batch bandit, indexed so that choosing the next one is cheap for thousands of queries.

The UCB score u + β·sqrt(2 ln t / n) gives every arm with the same n the same exploration term, so among those
only the most uncertain can win: one heap per n, and a choice compares one top per n (at most the per-query cap)
instead of scoring every arm. Entries are never removed in place: updating an arm bumps its stamp, and entries
with an old stamp are dropped when they reach the top of their heap.
"""

from __future__ import annotations

import heapq
import math
from typing import TypeVar

_Entry = TypeVar("_Entry", bound=tuple[float, int, int])


class ArmIndex:
    """Arms named by their order in the batch (0, 1, …); ties always go to the lowest order."""

    def __init__(self, arms: int) -> None:
        self._stamps = [0] * arms
        self._fewest: list[tuple[int, int, int]] = []  # (started, order, stamp) of open arms
        self._ranked: dict[int, list[tuple[float, int, int]]] = {}  # started -> (-uncertainty, order, stamp)

    def update(self, order: int, started: int, uncertainty: float, *, open_: bool, ready: bool) -> None:
        """Record an arm's state. Open arms may get samples; ready ones (warm-up back) compete on their score."""
        self._stamps[order] += 1
        stamp = self._stamps[order]
        if open_:
            heapq.heappush(self._fewest, (started, order, stamp))
            if ready:
                heapq.heappush(self._ranked.setdefault(started, []), (-uncertainty, order, stamp))

    def fewest(self) -> tuple[int, int] | None:
        """(order, samples started) of the open arm with the fewest samples, or None when no arm is open."""
        heap = self._fewest
        self._drop_stale(heap)
        return (heap[0][1], heap[0][0]) if heap else None

    def best(self, exploration: float, total: int) -> int | None:
        """The ready arm with the highest UCB score, `total` being the batch's samples started."""
        best: tuple[float, int] | None = None
        for started, heap in list(self._ranked.items()):
            self._drop_stale(heap)
            if not heap:
                del self._ranked[started]
                continue
            negative_uncertainty, order, _ = heap[0]
            score = -negative_uncertainty + exploration * math.sqrt(2.0 * math.log(total) / started)
            if best is None or score > best[0] or (score == best[0] and order < best[1]):
                best = (score, order)
        return None if best is None else best[1]

    def _drop_stale(self, heap: list[_Entry]) -> None:
        while heap and heap[0][2] != self._stamps[heap[0][1]]:
            heapq.heappop(heap)
