"""Probe traces: what a recording keeps of one path run to its end with every candidate probe taken.

A recording is one `PathTrace` per question. Because the path was not stopped, its final answer is the answer the
same (greedy) path reaches unstopped, so replaying any exit policy on the trace is exact: an exit at a probe costs
the path tokens up to that probe plus the probe tokens the policy would have sent.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # certa.core.types keeps traces in path results: it imports this module
    from certa.core.types import TokenLogProbs


@dataclass(frozen=True)
class ProbeTrace:
    """One probe of a recorded path.

    `trigger` is "chunk" (a fixed chunk boundary) or the cue the last chunk wrote (`certa.core.exit.cues`).
    `candidate` / `answer_cue`: facts about the path *before* the probe (it had written a result / an answer cue),
    known without sending the probe. `answer_in_path`: the probe's answer is a quantity the path itself wrote.
    `answer_log_probs` is None when the backend returned no log-probabilities. `final_written`: the path had
    already written its boxed final answer, so it is about to end and a probe there could save next to nothing.
    `path_s` / `probe_s`: wall time the path took to reach the probe, and the probe call's own (None in recordings
    made without timings).
    """

    position_tokens: int
    trigger: str
    answer: str
    answer_log_probs: tuple[float, ...] | None
    hesitant: bool
    tokens: int
    candidate: bool
    answer_cue: bool
    answer_in_path: bool
    final_written: bool = False  # the path had already written a complete `\boxed{...}`: it is ending
    path_s: float | None = None
    probe_s: float | None = None

    @property
    def confidence(self) -> float | None:
        """Geometric-mean probability of the answer tokens (DEER's trial-answer confidence); None without log-probs."""
        return geometric_mean_probability(self.answer_log_probs)


@dataclass(frozen=True)
class PathTrace:
    """One question's unstopped path and its probes, with the model and prompt template that produced it.

    `path_s` is the wall time of the path's own calls, probes excluded (None in recordings made without timings).
    """

    question_id: str
    gold: str
    final_answer: str
    path_tokens: int
    finish: str
    probes: tuple[ProbeTrace, ...]
    model: str
    template: str
    path_s: float | None = None


def geometric_mean_probability(log_probs: Sequence[float] | None) -> float | None:
    if log_probs is None or not log_probs:
        return None
    return math.exp(sum(log_probs) / len(log_probs))


def answer_log_probs(log_probs: TokenLogProbs | None, answer_end_chars: int) -> tuple[float, ...] | None:
    """Log-probs of the probe tokens that make up its answer: those starting before `answer_end_chars`.

    The probe's text starts right after `\\boxed{`, so its answer is the text before the first unmatched `}`;
    a token is part of the answer when its text starts inside it.
    """
    if log_probs is None:
        return None
    chosen = []
    start = 0
    for value, end in zip(log_probs.log_probs, log_probs.text_ends, strict=True):
        if start < answer_end_chars:
            chosen.append(value)
        start = end
    return tuple(chosen)


def probe_to_dict(probe: ProbeTrace) -> dict[str, Any]:
    return {
        "position_tokens": probe.position_tokens,
        "trigger": probe.trigger,
        "answer": probe.answer,
        "answer_log_probs": None if probe.answer_log_probs is None else [round(v, 6) for v in probe.answer_log_probs],
        "hesitant": probe.hesitant,
        "tokens": probe.tokens,
        "candidate": probe.candidate,
        "answer_cue": probe.answer_cue,
        "answer_in_path": probe.answer_in_path,
        "final_written": probe.final_written,
        **_seconds(path_s=probe.path_s, probe_s=probe.probe_s),
    }


def _seconds(**timings: float | None) -> dict[str, float]:
    """The timings a recording has (recordings made without them keep their lines as they were)."""
    return {key: round(value, 4) for key, value in timings.items() if value is not None}


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def trace_to_dict(trace: PathTrace) -> dict[str, Any]:
    """One JSON line of a recording."""
    return {
        "question_id": trace.question_id,
        "model": trace.model,
        "template": trace.template,
        "gold": trace.gold,
        "final_answer": trace.final_answer,
        "path_tokens": trace.path_tokens,
        "finish": trace.finish,
        "probes": [probe_to_dict(probe) for probe in trace.probes],
        **_seconds(path_s=trace.path_s),
    }


def trace_from_dict(data: Mapping[str, Any]) -> PathTrace:
    """A recording line as a `PathTrace`; `KeyError`/`TypeError`/`ValueError` on a malformed line."""
    probes = tuple(
        ProbeTrace(
            position_tokens=int(p["position_tokens"]),
            trigger=str(p["trigger"]),
            answer=str(p["answer"]),
            answer_log_probs=None if p["answer_log_probs"] is None else tuple(float(v) for v in p["answer_log_probs"]),
            hesitant=bool(p["hesitant"]),
            tokens=int(p["tokens"]),
            candidate=bool(p["candidate"]),
            answer_cue=bool(p["answer_cue"]),
            answer_in_path=bool(p["answer_in_path"]),
            final_written=bool(p.get("final_written", False)),
            path_s=_optional_float(p.get("path_s")),
            probe_s=_optional_float(p.get("probe_s")),
        )
        for p in data["probes"]
    )
    return PathTrace(
        question_id=str(data["question_id"]),
        gold=str(data["gold"]),
        final_answer=str(data["final_answer"]),
        path_tokens=int(data["path_tokens"]),
        finish=str(data["finish"]),
        probes=probes,
        model=str(data["model"]),
        template=str(data["template"]),
        path_s=_optional_float(data.get("path_s")),
    )
