"""Online budget pools: a tenant's token bucket of *samples*, shared by requests that arrive over time.

A pool refills continuously at `samples_per_second` up to `burst` (a pool never seen starts full). A
self-consistency request draws its first wave unconditionally (`mandatory`: granted at once, even into debt, so
every request gets an answer) and asks the pool for each further wave. Requests waiting for a wave are ranked by
the UCB score `u + exploration * sqrt(2 ln max(T, 2) / max(n, 1))` (u: the request's uncertainty, n: the samples
it drew, T: the pool's samples granted so far), ties to the earlier waiter: the most uncertain, least explored
request gets the next wave. A waiter is granted when the waves of everyone ranked at or above it fit in the level;
otherwise its wave stays reserved for the better ones and it is told to come back soon (its rank may change). A
waiter that has not asked again for `STALE_S` seconds is dropped: its replica died or it gave up.

This module is the model on plain data with an injected clock: `MemoryBudgetPools` runs it, the Redis adapter's
Lua script mirrors it line for line (using the Redis server's clock, so every replica agrees), and the tests
check both against it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace

from certa.core.errors import InvalidArgument

STALE_S = 3.0
"""A waiter that has not asked again within this many seconds is dropped from the waiting set."""

MIN_RETRY_S, MAX_RETRY_S = 0.05, 1.0
"""Bounds of the suggested wait of a waiter not granted: ranks change, so it must come back soon."""

MIN_TTL_S = 3600.0
"""An idle pool vanishes after max(this, the time to refill twice over); a vanished pool starts full again."""

_POOL_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")  # used with fullmatch: `$` would let "x\n" through


def validate_pool_name(name: str, where: str) -> str:
    """A pool name as a request gives it; it becomes part of Redis keys, so the alphabet is small."""
    if not _POOL_NAME.fullmatch(name):
        raise InvalidArgument(where, "must be 1-64 letters, digits, '.', '_' or '-'")
    return name


def _finite(value: float) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


@dataclass(frozen=True)
class PoolPolicy:
    """How a pool refills (`samples_per_second`, up to `burst` samples), how long a request may wait for a wave
    before it stops with what it has (`max_wait_s`, enforced by the runtime), and the weight of exploration."""

    samples_per_second: float
    burst: int
    max_wait_s: float = 2.0
    exploration: float = 0.1

    def validate(self, where: str) -> None:
        if not _finite(self.samples_per_second) or self.samples_per_second <= 0:
            raise ValueError(f"{where}.samples_per_second: must be a finite number > 0, got {self.samples_per_second}")
        if not _finite(self.burst) or self.burst < 1:
            raise ValueError(f"{where}.burst: must be an integer >= 1, got {self.burst}")
        if not _finite(self.max_wait_s) or self.max_wait_s < 0:
            raise ValueError(f"{where}.max_wait_s: must be a finite number >= 0, got {self.max_wait_s}")
        if not _finite(self.exploration) or self.exploration < 0:
            raise ValueError(f"{where}.exploration: must be a finite number >= 0, got {self.exploration}")

    @property
    def ttl_s(self) -> float:
        """How long an idle pool is kept: long enough to refill from empty twice, at least `MIN_TTL_S`."""
        return max(MIN_TTL_S, 2 * self.burst / self.samples_per_second)


@dataclass(frozen=True)
class WaveRequest:
    """One wave a request asks for: `samples` more, having drawn `drawn`, with uncertainty 1 − Certaindex."""

    request_id: str
    samples: int
    drawn: int
    uncertainty: float
    mandatory: bool = False

    def validate(self, where: str) -> None:
        if not self.request_id:
            raise ValueError(f"{where}.request_id: must not be empty")
        if self.samples < 1:
            raise ValueError(f"{where}.samples: must be >= 1, got {self.samples}")
        if self.drawn < 0:
            raise ValueError(f"{where}.drawn: must be >= 0, got {self.drawn}")
        if not _finite(self.uncertainty) or not 0.0 <= self.uncertainty <= 1.0:
            raise ValueError(f"{where}.uncertainty: must be in [0, 1], got {self.uncertainty}")


@dataclass(frozen=True)
class PoolDecision:
    """`granted` is 0 or the wave's samples; `retry_after_s` (0.0 when granted) says when to ask again; `level`
    and `spent_samples` are the pool's after the decision."""

    granted: int
    retry_after_s: float
    level: float
    spent_samples: int


@dataclass(frozen=True)
class PoolStats:
    """A pool as of now: its level, what it granted and what was generated, and its waiters best first."""

    level: float
    spent_samples: int
    spent_tokens: int
    waiting: tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class RequestUsage:
    """What one request got from a pool: samples granted and tokens generated."""

    samples: int = 0
    tokens: int = 0


@dataclass(frozen=True)
class Waiter:
    """A request waiting for a wave; `first_seen_s` breaks ties, `last_seen_s` tells when it went stale."""

    request_id: str
    samples: int
    drawn: int
    uncertainty: float
    first_seen_s: float
    last_seen_s: float


@dataclass(frozen=True)
class BucketState:
    """What a pool stores: the level at `updated_s`, the counters, and the waiting set."""

    level: float
    updated_s: float
    spent_samples: int = 0
    spent_tokens: int = 0
    waiting: tuple[Waiter, ...] = ()

    @classmethod
    def full(cls, policy: PoolPolicy, now_s: float) -> BucketState:
        return cls(level=float(policy.burst), updated_s=now_s)


def pool_score(uncertainty: float, drawn: int, spent: int, exploration: float) -> float:
    """The UCB score of a waiter: its uncertainty plus an exploration bonus that shrinks as it draws samples and
    grows (slowly) as the pool grants samples to others."""
    return uncertainty + exploration * math.sqrt(2 * math.log(max(spent, 2)) / max(drawn, 1))


def refill(level: float, updated_s: float, now_s: float, policy: PoolPolicy) -> float:
    """The level at `now_s`: refilled continuously since `updated_s` (a clock going back adds nothing), at most
    `burst`."""
    return min(float(policy.burst), level + max(0.0, now_s - updated_s) * policy.samples_per_second)


def ranked(waiting: tuple[Waiter, ...], spent: int, exploration: float) -> list[tuple[Waiter, float]]:
    """Waiters with their scores, best first; ties to the earlier waiter, then (for determinism) the smaller id."""
    scored = [(w, pool_score(w.uncertainty, w.drawn, spent, exploration)) for w in waiting]
    return sorted(scored, key=lambda pair: (-pair[1], pair[0].first_seen_s, pair[0].request_id))


def _fresh(waiting: tuple[Waiter, ...], now_s: float, stale_s: float) -> tuple[Waiter, ...]:
    return tuple(w for w in waiting if now_s - w.last_seen_s <= stale_s)


def retry_after(need: float, level: float, policy: PoolPolicy) -> float:
    """How long until the level covers `need` at the refill rate, clamped: the rank may change before that."""
    return min(MAX_RETRY_S, max(MIN_RETRY_S, (need - level) / policy.samples_per_second))


def acquire(
    state: BucketState, policy: PoolPolicy, wave: WaveRequest, now_s: float, stale_s: float = STALE_S
) -> tuple[BucketState, PoolDecision]:
    """Decide one wave. Mandatory waves are granted at once (into debt if need be) and never wait. Otherwise the
    waiter is upserted (keeping its first-seen time), the waiting set ranked, and the waiter granted iff the waves
    of everyone ranked at or above it fit in the level; a granted waiter leaves the waiting set."""
    level = refill(state.level, state.updated_s, now_s, policy)
    waiting = _fresh(state.waiting, now_s, stale_s)
    spent = state.spent_samples
    if wave.mandatory:
        level -= wave.samples
        spent += wave.samples
        after = replace(state, level=level, updated_s=now_s, spent_samples=spent, waiting=waiting)
        return after, PoolDecision(wave.samples, 0.0, level, spent)
    known = next((w for w in waiting if w.request_id == wave.request_id), None)
    me = Waiter(
        wave.request_id,
        wave.samples,
        wave.drawn,
        wave.uncertainty,
        first_seen_s=known.first_seen_s if known else now_s,
        last_seen_s=now_s,
    )
    others = tuple(w for w in waiting if w.request_id != wave.request_id)
    need = 0
    for waiter, _ in ranked((*others, me), spent, policy.exploration):
        need += waiter.samples
        if waiter.request_id == wave.request_id:
            break
    if need <= level:
        level -= wave.samples
        spent += wave.samples
        after = replace(state, level=level, updated_s=now_s, spent_samples=spent, waiting=others)
        return after, PoolDecision(wave.samples, 0.0, level, spent)
    after = replace(state, level=level, updated_s=now_s, waiting=(*others, me))
    return after, PoolDecision(0, retry_after(need, level, policy), level, spent)


def withdraw(state: BucketState, request_id: str) -> BucketState:
    """The request left the waiting set (finished or gave up); nothing else changes."""
    return replace(state, waiting=tuple(w for w in state.waiting if w.request_id != request_id))


def view(state: BucketState, policy: PoolPolicy, now_s: float, stale_s: float = STALE_S) -> PoolStats:
    """The pool as of `now_s`, without changing it: refilled level, counters, live waiters best first."""
    waiting = ranked(_fresh(state.waiting, now_s, stale_s), state.spent_samples, policy.exploration)
    return PoolStats(
        level=refill(state.level, state.updated_s, now_s, policy),
        spent_samples=state.spent_samples,
        spent_tokens=state.spent_tokens,
        waiting=tuple((w.request_id, score) for w, score in waiting),
    )
