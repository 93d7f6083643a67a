"""`certa replay --online`: budget pools measured over pre-sampled answers, with questions arriving over time.

A batch knows all its questions up front; a pool does not. This replay simulates that: questions of a replay pool
(`certa_bench.replay`) arrive one every `1 / arrival_rate` seconds, each runs self-consistency in waves of
`wave_size` with the Certaindex rule (0.7 from 2 samples), and every wave takes `wave_s` seconds (time advances in
steps of `TICK_S`). A question's k-th sample is its k-th
recorded answer, so every contender sees the same draws. Contenders:

* **fixed n**: every question draws n samples (the baseline);
* **Certaindex, no pool**: each question stops by its rule or at `cap`, whatever that costs;
* **pool, most uncertain first**: waves after the first come from one pool refilled at n × arrival_rate samples
  per second (n per question on average), ranked as `certa.core.budget_pool` ranks them (UCB on uncertainty);
* **pool, first come first served**: the same pool, every waiter ranked alike, so the earliest waiter wins.

The pool decisions are the controller's own code (`certa.core.budget_pool.acquire`) on a simulated clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from certa.core.budget_pool import BucketState, PoolPolicy, WaveRequest, acquire
from certa.core.stop_rules import CertaindexRule, StopDecision
from certa.core.strategies.samples import voted_answer
from certa.core.tally import AnswerTally
from certa_bench.replay import PooledQuestion, ReplayRow, fixed_n

TICK_S = 0.25


@dataclass(frozen=True)
class OnlineSetup:
    """How questions arrive and run: one every 1 / `arrival_rate` s, waves of `wave_size` lasting `wave_s`."""

    samples_per_question: int
    arrival_rate: float = 1.0
    wave_size: int = 1
    wave_s: float = 4.0
    cap: int = 16
    burst_waves: int = 8
    max_wait_s: float = 4.0
    exploration: float = 0.1
    rule: CertaindexRule = field(default_factory=lambda: CertaindexRule(0.7, 2))


@dataclass
class _Running:
    question: PooledQuestion
    tally: AnswerTally = field(default_factory=AnswerTally)
    drawn: int = 0
    wave_ends_at: float | None = None
    waiting_since: float | None = None
    done: bool = False


def _uncertainty(state: _Running, first_come: bool) -> float:
    return 1.0 if first_come else 1.0 - state.tally.certaindex


def simulate(
    pool: Sequence[PooledQuestion], setup: OnlineSetup, *, pooled: bool, first_come: bool = False
) -> ReplayRow:
    """Certaindex self-consistency on every question, with or without the shared pool."""
    policy = PoolPolicy(
        samples_per_second=setup.samples_per_question * setup.arrival_rate,
        burst=setup.burst_waves * setup.wave_size,
        max_wait_s=setup.max_wait_s,
        exploration=0.0 if first_come else setup.exploration,
    )
    bucket = BucketState.full(policy, 0.0)
    cap = min(setup.cap, *(len(question.answers) for question in pool))
    running = [_Running(question) for question in pool]
    samples = tokens = 0
    now, arrived = 0.0, 0

    def start_wave(state: _Running) -> None:
        nonlocal samples, tokens
        wave = min(setup.wave_size, cap - state.drawn)
        recorded = state.question.tokens
        tokens += sum(recorded[state.drawn : state.drawn + wave]) if recorded is not None else 0
        samples += wave
        state.wave_ends_at, state.waiting_since = now + setup.wave_s, None

    while arrived < len(running) or any(not state.done for state in running):
        while arrived < len(running) and arrived <= now * setup.arrival_rate:
            state = running[arrived]
            if pooled:
                bucket, _ = acquire(bucket, policy, WaveRequest(state.question.id, setup.wave_size, 0, 1.0, True), now)
            start_wave(state)
            arrived += 1
        for state in running[:arrived]:
            if state.done:
                continue
            if state.wave_ends_at is not None and state.wave_ends_at <= now:
                wave = min(setup.wave_size, cap - state.drawn)
                for answer in state.question.answers[state.drawn : state.drawn + wave]:
                    state.tally = state.tally.add(answer)
                state.drawn += wave
                state.wave_ends_at = None
                if setup.rule.decide(state.tally).stop or state.drawn >= cap:
                    state.done = True
                    continue
                state.waiting_since = now
            if state.waiting_since is None:
                continue
            if not pooled:
                start_wave(state)
                continue
            ask = WaveRequest(state.question.id, setup.wave_size, state.drawn, _uncertainty(state, first_come))
            bucket, decision = acquire(bucket, policy, ask, now)
            if decision.granted:
                start_wave(state)
            elif now - state.waiting_since >= policy.max_wait_s:
                state.done = True
        now += TICK_S
    correct = 0
    for state in running:
        decision = setup.rule.decide(state.tally) if state.tally.samples else StopDecision(False, "", 0.0)
        correct += voted_answer(state.tally, decision) == state.question.gold
    return ReplayRow("", len(pool), correct, samples, tokens if all(q.tokens for q in pool) else None)


def compare_online(pool: Sequence[PooledQuestion], setup: OnlineSetup) -> list[ReplayRow]:
    """The contenders of the module docstring. The pool keeps refilling while the last questions finish, so it may
    spend a little more than n per question: fixed n + 1 is listed too, to bracket it."""
    n = setup.samples_per_question
    return [
        fixed_n(pool, n),
        fixed_n(pool, n + 1),
        replace(simulate(pool, setup, pooled=False), contender=f"certaindex, no pool (cap {setup.cap})"),
        replace(simulate(pool, setup, pooled=True), contender="pool, most uncertain first"),
        replace(simulate(pool, setup, pooled=True, first_come=True), contender="pool, first come first served"),
    ]
