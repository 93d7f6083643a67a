"""Exit policies: pure values deciding, over the probes sent so far, whether a path may stop.

A policy also says which probes are worth sending (`wants_probe`): it is asked with what is known *before* a probe
(position, trigger, whether the path wrote a candidate / an answer cue), so a probe that cannot change the decision
is never sent. `None` as a policy means "never exit": no probe is sent and the path is plain chain of thought.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from certa.core.answers import equivalent
from certa.core.exit.cues import CHUNK
from certa.core.exit.trace import ProbeTrace


@dataclass(frozen=True)
class ProbePoint:
    """What is known at a chunk boundary before probing."""

    position_tokens: int
    trigger: str
    candidate: bool
    answer_cue: bool
    final_written: bool = False


@dataclass(frozen=True)
class ExitPolicy:
    """Exit when the latest `agreement` sent probes give one non-empty answer, none hesitates, and (when set) the
    latest probe's confidence is at least `min_confidence`.

    Probe gating: probes are sent from `min_position_tokens` on, only once the path wrote a candidate answer
    (`require_candidate`) or an answer cue (`require_answer_cue`), only at cues (`cues_only`), and only every
    `every_tokens` path tokens (0: at every chunk boundary). `require_answer_in_path` asks that the latest probe's
    answer be a quantity the path itself wrote. `min_confidence = None` is an agreement-only policy.
    """

    agreement: int = 1
    min_confidence: float | None = None
    min_position_tokens: int = 0
    require_candidate: bool = True
    require_answer_cue: bool = False
    require_answer_in_path: bool = False
    cues_only: bool = False
    every_tokens: int = 0

    @property
    def uses_confidence(self) -> bool:
        return self.min_confidence is not None

    def describe(self) -> str:
        parts = [f"{self.agreement} agreeing probe{'s' if self.agreement != 1 else ''}"]
        if self.min_confidence is not None:
            parts.append(f"confidence >= {self.min_confidence:g}")
        if self.min_position_tokens:
            parts.append(f"from token {self.min_position_tokens}")
        if self.require_answer_cue:
            parts.append("after an answer cue")
        elif self.require_candidate:
            parts.append("after a candidate answer")
        if self.require_answer_in_path:
            parts.append("answer written by the path")
        if self.cues_only:
            parts.append("probed at cues")
        if self.every_tokens:
            parts.append(f"probed every {self.every_tokens} tokens")
        return ", ".join(parts)


def wants_probe(policy: ExitPolicy | None, point: ProbePoint) -> bool:
    """Whether a probe at `point` could take part in an exit decision of `policy` that saves tokens: never once the
    path wrote its boxed final answer (it is ending; the reference presets, which probe every chunk, excepted)."""
    if policy is None or point.position_tokens < policy.min_position_tokens:
        return False
    if point.final_written and policy.require_candidate:
        return False
    if policy.require_candidate and not point.candidate:
        return False
    if policy.require_answer_cue and not point.answer_cue:
        return False
    if policy.cues_only and point.trigger == CHUNK:
        return False
    return not (policy.every_tokens and point.position_tokens % policy.every_tokens)


def should_exit(policy: ExitPolicy | None, sent: Sequence[ProbeTrace]) -> bool:
    """Whether the path may stop after the probes `sent` so far (the latest last)."""
    if policy is None or len(sent) < policy.agreement or policy.agreement < 1:
        return False
    recent = sent[-policy.agreement :]
    latest = recent[-1]
    if not all(probe.answer and not probe.hesitant for probe in recent):
        return False
    if policy.require_answer_in_path and not latest.answer_in_path:
        return False
    if policy.min_confidence is not None:
        confidence = latest.confidence
        if confidence is None or confidence < policy.min_confidence:
            return False
    return all(equivalent(probe.answer, latest.answer) for probe in recent[:-1])


def probe_point(probe: ProbeTrace) -> ProbePoint:
    return ProbePoint(probe.position_tokens, probe.trigger, probe.candidate, probe.answer_cue, probe.final_written)


def policy_to_dict(policy: ExitPolicy | None) -> dict[str, Any] | None:
    if policy is None:
        return None
    return {
        "agreement": policy.agreement,
        "min_confidence": policy.min_confidence,
        "min_position_tokens": policy.min_position_tokens,
        "require_candidate": policy.require_candidate,
        "require_answer_cue": policy.require_answer_cue,
        "require_answer_in_path": policy.require_answer_in_path,
        "cues_only": policy.cues_only,
        "every_tokens": policy.every_tokens,
    }


def policy_from_dict(data: Mapping[str, Any] | None) -> ExitPolicy | None:
    if data is None:
        return None
    confidence = data.get("min_confidence")
    return ExitPolicy(
        agreement=int(data["agreement"]),
        min_confidence=None if confidence is None else float(confidence),
        min_position_tokens=int(data.get("min_position_tokens", 0)),
        require_candidate=bool(data.get("require_candidate", True)),
        require_answer_cue=bool(data.get("require_answer_cue", False)),
        require_answer_in_path=bool(data.get("require_answer_in_path", False)),
        cues_only=bool(data.get("cues_only", False)),
        every_tokens=int(data.get("every_tokens", 0)),
    )
