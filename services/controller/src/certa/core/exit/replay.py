"""Exact offline replay of an exit policy on recorded traces.

For each recorded path the policy sees the recorded probes it would have sent (`policy.wants_probe`), in order;
at the first probe after which `should_exit` holds the path stops there. Path tokens are then the probe's position
(probes are taken between chunks, the next chunk starts only after the decision), probe tokens the sum over the
probes sent. Without an exit the path costs what it cost unstopped, plus the probes sent.

Wall time, when the recording has timings, is replayed the same way: the path's time up to the exit (or all of
it) plus the sent probes' calls, one after the other.

A **premature** exit answers differently from the unstopped path; a **wrong** exit turns the unstopped path's
right answer into a wrong one (ALGORITHMS.md section 2b).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from certa.core.answers import equivalent
from certa.core.exit.policy import ExitPolicy, probe_point, should_exit, wants_probe
from certa.core.exit.trace import PathTrace, ProbeTrace


@lru_cache(maxsize=65536)
def _same(a: str, b: str) -> bool:
    return bool(a) and bool(b) and equivalent(a, b)


@dataclass(frozen=True)
class QuestionReplay:
    question_id: str
    answer: str
    correct: bool
    exited: bool
    exit_position_tokens: int | None
    premature: bool
    wrong: bool
    path_tokens: int
    probe_tokens: int
    probes_sent: int
    wall_s: float | None = None


@dataclass(frozen=True)
class ReplaySummary:
    """A policy's figures over a recording, next to the unstopped paths' (`plain_*`)."""

    questions: int
    correct: int
    path_tokens: int
    probe_tokens: int
    exits: int
    premature: int
    wrong: int
    exit_positions: tuple[int, ...]
    plain_correct: int
    plain_tokens: int
    rows: tuple[QuestionReplay, ...]
    wall_s: float | None = None
    plain_wall_s: float | None = None

    @property
    def tokens(self) -> int:
        return self.path_tokens + self.probe_tokens

    @property
    def saving(self) -> float:
        """1 - tokens / plain tokens (negative: the policy spent more than plain chain of thought)."""
        return 1 - self.tokens / self.plain_tokens if self.plain_tokens else 0.0

    @property
    def accuracy(self) -> float:
        return self.correct / self.questions if self.questions else 0.0


def _wall_s(path_s: float | None, sent: Sequence[ProbeTrace]) -> float | None:
    probes_s = [probe.probe_s for probe in sent]
    if path_s is None or None in probes_s:
        return None
    return path_s + sum(value for value in probes_s if value is not None)


def _total(values: Sequence[float | None]) -> float | None:
    return None if not values or None in values else sum(value for value in values if value is not None)


def replay_path(policy: ExitPolicy | None, trace: PathTrace) -> QuestionReplay:
    """The policy on one recorded path."""
    sent: list[ProbeTrace] = []
    for probe in trace.probes:
        if not wants_probe(policy, probe_point(probe)):
            continue
        sent.append(probe)
        if should_exit(policy, sent):
            premature = not _same(probe.answer, trace.final_answer)
            correct = _same(probe.answer, trace.gold)
            return QuestionReplay(
                question_id=trace.question_id,
                answer=probe.answer,
                correct=correct,
                exited=True,
                exit_position_tokens=probe.position_tokens,
                premature=premature,
                wrong=_same(trace.final_answer, trace.gold) and not correct,
                path_tokens=probe.position_tokens,
                probe_tokens=sum(p.tokens for p in sent),
                probes_sent=len(sent),
                wall_s=_wall_s(probe.path_s, sent),
            )
    return QuestionReplay(
        question_id=trace.question_id,
        answer=trace.final_answer,
        correct=_same(trace.final_answer, trace.gold),
        exited=False,
        exit_position_tokens=None,
        premature=False,
        wrong=False,
        path_tokens=trace.path_tokens,
        probe_tokens=sum(p.tokens for p in sent),
        probes_sent=len(sent),
        wall_s=_wall_s(trace.path_s, sent),
    )


def replay(policy: ExitPolicy | None, traces: Sequence[PathTrace]) -> ReplaySummary:
    """The policy over every recorded path (`None`: plain chain of thought, no probes)."""
    rows = tuple(replay_path(policy, trace) for trace in traces)
    exits = [row for row in rows if row.exited]
    return ReplaySummary(
        questions=len(rows),
        correct=sum(row.correct for row in rows),
        path_tokens=sum(row.path_tokens for row in rows),
        probe_tokens=sum(row.probe_tokens for row in rows),
        exits=len(exits),
        premature=sum(row.premature for row in exits),
        wrong=sum(row.wrong for row in exits),
        exit_positions=tuple(row.exit_position_tokens or 0 for row in exits),
        plain_correct=sum(_same(trace.final_answer, trace.gold) for trace in traces),
        plain_tokens=sum(trace.path_tokens for trace in traces),
        rows=rows,
        wall_s=_total([row.wall_s for row in rows]),
        plain_wall_s=_total([trace.path_s for trace in traces]),
    )
